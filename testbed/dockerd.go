package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Debian's docker.io and the containerd it depends on (1.6), never the test
// bed's containerd 2: this is the Docker that Nomad's docker driver users run.
const (
	DockerdBin          = "/usr/sbin/dockerd"
	DockerContainerdBin = "/usr/bin/containerd"
)

// dockerKey is where dockerd 20.10 writes its identity key whatever its
// data root (no flag moves it).
const dockerKey = "/etc/docker/key.json"

// systemPath is the PATH of Docker's daemons: Debian's shim and runc, not
// the test bed's.
const systemPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Dockerd is a Docker daemon of our own, for the benchmark's peer (Nomad's
// docker driver): its own data root, exec root, pid file and API socket, its
// own containerd (own root, state and socket), its own bridge, subnet and
// cgroup parent. Stop removes all of it, with the iptables chains and rules
// dockerd made and the bridge.
type Dockerd struct {
	Endpoint     string // unix://<socket>, the docker driver's endpoint
	Socket       string
	Containerd   string // its containerd's socket
	Bridge       string // the link of its default bridge network
	Subnet       string
	CgroupParent string

	run, data string // exec root and sockets (short paths); data root
	net       dockerNet
	cd, dd    *daemon
	hadKey    bool // dockerKey existed before
	apiOnce   sync.Once
	api       *http.Client
	stopOnce  sync.Once
	stopErr   error
}

// DockerMissing lists what a Dockerd needs and this machine lacks:
// Debian's dockerd, containerd and its shim (`hack/deps.sh bench`),
// iptables and ip.
func DockerMissing() []string {
	var missing []string
	for _, p := range []string{DockerdBin, DockerContainerdBin, "/usr/bin/containerd-shim-runc-v2"} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p+" (Debian's docker.io: `bash hack/deps.sh bench`)")
		}
	}
	for _, b := range []string{"iptables", "iptables-save", "ip"} {
		if _, err := LookBin(b); err != nil {
			missing = append(missing, b)
		}
	}
	if os.Geteuid() != 0 {
		missing = append(missing, "root privileges")
	}
	return missing
}

// RequireDocker skips the test (fails it under CI=true) when DockerMissing
// names anything.
func RequireDocker(t testing.TB) {
	t.Helper()
	missing := DockerMissing()
	if len(missing) == 0 {
		return
	}
	if InCI() {
		t.Fatalf("testbed: missing %v (CI=true: a missing dependency is a failure)", missing)
	}
	t.Skipf("testbed: missing %v", missing)
}

// StartDockerd starts a Docker daemon for the test and removes it, with
// everything it made, when the test ends.
func StartDockerd(t testing.TB) *Dockerd {
	t.Helper()
	RequireDocker(t)
	d, err := LaunchDockerd()
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	stopAtCleanup(t, "dockerd", d)
	return d
}

// LaunchDockerd starts containerd and dockerd and waits until dockerd
// answers. Stop undoes it.
func LaunchDockerd() (_ *Dockerd, err error) {
	d := &Dockerd{CgroupParent: "/ndc-docker-" + randHex(3)}
	_, statErr := os.Stat(dockerKey)
	d.hadKey = statErr == nil
	defer func() {
		if err != nil {
			err = errors.Join(err, d.Stop())
		}
	}()
	if d.run, err = os.MkdirTemp("/run", "ndc-docker-"); err != nil {
		return nil, err
	}
	if d.data, err = os.MkdirTemp("", "ndc-docker-data-"); err != nil {
		return nil, err
	}
	d.Socket, d.Containerd = filepath.Join(d.run, "docker.sock"), filepath.Join(d.run, "containerd.sock")
	d.Endpoint = "unix://" + d.Socket
	if d.net, err = newDockerNet(); err != nil {
		return nil, err
	}
	d.Bridge, d.Subnet = d.net.bridge, d.net.subnet
	env := cleanEnv("PATH=" + systemPath)

	cfg := filepath.Join(d.run, "containerd.toml")
	if err := os.WriteFile(cfg, []byte(dockerContainerdConfig(d.data, d.run, d.Containerd)), 0o644); err != nil {
		return nil, err
	}
	if d.cd, err = startDaemon(filepath.Join(d.run, "containerd.log"), env, false, DockerContainerdBin, "--config", cfg); err != nil {
		return nil, err
	}
	if !Poll(30*time.Second, 50*time.Millisecond, func() bool { return socketAnswers(d.Containerd) || d.cd.exited() }) || d.cd.exited() {
		return nil, fmt.Errorf("docker's containerd did not come up:\n%s", d.cd.logTail(4096))
	}
	daemonJSON := filepath.Join(d.run, "daemon.json")
	if err := os.WriteFile(daemonJSON, []byte("{}\n"), 0o644); err != nil {
		return nil, err
	}
	if d.dd, err = startDaemon(filepath.Join(d.run, "dockerd.log"), env, false, DockerdBin,
		"--config-file", daemonJSON,
		"--data-root", filepath.Join(d.data, "root"),
		"--exec-root", filepath.Join(d.run, "exec"),
		"--pidfile", filepath.Join(d.run, "docker.pid"),
		"-H", d.Endpoint,
		"--containerd", d.Containerd,
		"--bridge", d.Bridge,
		"--cgroup-parent", d.CgroupParent,
		"--exec-opt", "native.cgroupdriver=cgroupfs",
		"--ip-forward=false", // the host's forwarding setting (and FORWARD policy) stay as they are
		"--log-level", "warn",
	); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if !Poll(time.Minute, 100*time.Millisecond, func() bool { return d.ping(ctx) == nil || d.dd.exited() }) || d.dd.exited() {
		return nil, fmt.Errorf("dockerd did not come up: %v\n%s", d.ping(ctx), d.dd.logTail(4096))
	}
	return d, nil
}

// dockerContainerdConfig is the containerd 1.6 (config version 2) file of
// Docker's containerd: root under data, state and socket under run, no
// CRI and no debug or metrics sockets.
func dockerContainerdConfig(data, run, address string) string {
	return fmt.Sprintf(`version = 2
root  = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(data, "containerd"), filepath.Join(run, "containerd-state"), address, filepath.Join(data, "opt"))
}

// socketAnswers reports whether a unix socket accepts connections.
func socketAnswers(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// API is an HTTP client of the daemon's socket (URLs http://docker/...).
func (d *Dockerd) API() *http.Client {
	d.apiOnce.Do(func() {
		d.api = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", d.Socket)
		}}}
	})
	return d.api
}

func (d *Dockerd) ping(ctx context.Context) error {
	return d.call(ctx, http.MethodGet, "/_ping", nil)
}

// call makes one API request and fails on a status other than 2xx.
func (d *Dockerd) call(ctx context.Context, method, path string, body io.Reader) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://docker"+path, body)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-tar")
	}
	resp, err := d.API().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("docker %s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(out)))
	}
	if strings.Contains(string(out), `"errorDetail"`) {
		return fmt.Errorf("docker %s %s: %s", method, path, strings.TrimSpace(string(out)))
	}
	return nil
}

// LogTail is the end of dockerd's log, then containerd's.
func (d *Dockerd) LogTail(n int64) string {
	var b strings.Builder
	for name, p := range map[string]*daemon{"dockerd": d.dd, "containerd": d.cd} {
		if p != nil {
			fmt.Fprintf(&b, "%s:\n%s\n", name, p.logTail(n))
		}
	}
	return b.String()
}

// Stop stops dockerd (which stops its containers) and its containerd,
// kills shims left behind, unmounts and removes their files, and removes
// the cgroup parent, the bridge and the iptables chains and rules dockerd
// made.
func (d *Dockerd) Stop() error {
	d.stopOnce.Do(func() {
		var errs []error
		if d.dd != nil {
			d.dd.stop(syscall.SIGTERM, 30*time.Second)
		}
		if d.cd != nil {
			d.cd.stop(syscall.SIGTERM, 10*time.Second)
		}
		if d.Containerd != "" {
			shims := ShimPIDs(d.Containerd)
			killPIDs(append(descendants(shims), shims...))
		}
		for _, dir := range []string{d.data, d.run} {
			if dir != "" {
				errs = append(errs, UnmountAll(dir))
			}
		}
		errs = append(errs, removeCgroupTree(d.CgroupParent))
		errs = append(errs, d.net.remove()...)
		for _, dir := range []string{d.data, d.run} {
			if dir != "" {
				errs = append(errs, removeTree(dir))
			}
		}
		if !d.hadKey {
			if err := os.Remove(dockerKey); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			_ = os.Remove(filepath.Dir(dockerKey)) // only when empty: it was made for the key
		}
		d.stopErr = errors.Join(errs...)
	})
	return d.stopErr
}

// PIDs are the process ids of dockerd and its containerd.
func (d *Dockerd) PIDs() (dockerd, containerd int) { return d.dd.pid(), d.cd.pid() }
