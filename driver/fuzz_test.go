package driver

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/nomad/drivers/shared/capabilities"
	"github.com/hashicorp/nomad/helper/pluginutils/hclspecutils"
	"github.com/hashicorp/nomad/helper/pluginutils/hclutils"
	"github.com/hashicorp/nomad/plugins/drivers"
)

// optionNames are the task options a clear error starts with.
func optionNames() map[string]bool {
	names := map[string]bool{}
	for n := range taskConfigSpec.GetObject().GetAttributes() {
		names[n] = true
	}
	return names
}

// checkClearError fails unless err starts with the task option it is
// about ("volumes[0]: ...", "sysctl: ...").
func checkClearError(t *testing.T, input string, err error, names map[string]bool) {
	t.Helper()
	msg := err.Error()
	field := msg
	if i := strings.IndexAny(msg, ":[ "); i >= 0 {
		field = msg[:i]
	}
	if !names[field] {
		t.Fatalf("input %q: error %q does not start with the option it is about", input, msg)
	}
	if strings.Contains(msg, "%!") {
		t.Fatalf("input %q: error %q is badly formatted", input, msg)
	}
}

// fuzzPluginConfig is a plugin config with every gate closed.
func fuzzPluginConfig(f *testing.F) *Config {
	c, err := parseConfig(rawConfig{
		Address: "/run/containerd/containerd.sock", Namespace: "nomad", Runtime: "io.containerd.runc.v2",
		AllowRuntimes: []string{"io.containerd.runc.v2"}, Snapshotter: "overlayfs",
		ImagePullTimeout: "5m", PullActivityTimeout: "2m", StatsInterval: "1s",
		AllowCaps: capabilities.NomadDefaults().Slice(false), DefaultPIDMode: modePrivate, DefaultIPCMode: modePrivate,
		Trust: rawTrust{DefaultPolicy: "off"},
	})
	if err != nil {
		f.Fatal(err)
	}
	return c
}

// FuzzTaskConfig decodes a task config written as in a JSON job (the
// `Config` object) the way Nomad does, then validates and plans it against
// a plugin config with every gate closed: no input may panic, and every
// rejection by the driver must name the option it is about.
func FuzzTaskConfig(f *testing.F) {
	for _, s := range []string{
		`{"image":"busybox:1"}`,
		`{"image":"busybox:1","command":"sh","args":["-c","true"],"work_dir":"/srv","readonly_rootfs":true,"no_new_privileges":true}`,
		`{"image":"busybox:1","volumes":["local/data:/data:ro","/etc:/host-etc"],"bind":[{"local":"/x"}],"bind_read_only":[{"../alloc":"/y"}]}`,
		`{"image":"busybox:1","mount":[{"type":"tmpfs","target":"/scratch","tmpfs_options":[{"size":1024,"mode":1777}]}]}`,
		`{"image":"busybox:1","mounts":[{"type":"bind","source":"local","target":"/proc/sys","options":["rbind","rshared"]}]}`,
		`{"image":"busybox:1","network_mode":"bridge","ports":["http"],"port_map":[{"http":"8080/tcp"}]}`,
		`{"image":"busybox:1","net":["default"],"dns_servers":["host"],"extra_hosts":["db:host-gateway"]}`,
		`{"image":"busybox:1","sysctl":[{"net.core.somaxconn":"1024","kernel.panic":"1"}],"network_mode":"none"}`,
		`{"image":"busybox:1","devices":["/dev/fuse","/dev/sda:/dev/xvda:r"],"seccomp":false}`,
		`{"image":"busybox:1","seccomp_profile":"local/profile.json","cap_add":["sys_admin"],"cap_drop":["all"]}`,
		`{"image":"busybox:1","privileged":true,"pid_mode":"host","ipc_mode":"host","runtime":"io.containerd.kata.v2"}`,
		`{"image":"busybox:1","labels":[{"nomad.alloc_id":"x"}],"hostname":"web_1","pids_limit":-1}`,
		`{"image":"busybox:1","auth":[{"username":"u","password":"p"}],"image_pull_timeout":"0s","platform":"linux//","load":"/abs.tar"}`,
		`{"image":"busybox:1","cwd":"/proc/self/fd/7","trust_prefix":"registry.example.com/"}`,
	} {
		f.Add(s)
	}
	spec, diags := hclspecutils.Convert(taskConfigSpec)
	if diags.HasErrors() {
		f.Fatal(diags)
	}
	conf := fuzzPluginConfig(f)
	alloc := f.TempDir()
	names := optionNames()
	f.Fuzz(func(t *testing.T, input string) {
		cfg := fuzzTask(t, alloc)
		if !decodeJSONConfig(input, spec, cfg) {
			return // Nomad itself refuses it when the job is submitted
		}
		tc, err := decodeTaskConfig(cfg)
		if err != nil {
			checkClearError(t, input, err, names)
			return
		}
		p, err := planTask(conf, cfg, tc)
		if err != nil {
			checkClearError(t, input, err, names)
			return
		}
		defer p.pins.close()
		pinned := map[string]bool{}
		for _, b := range p.pins.binds {
			pinned[b.dest] = true
		}
		for _, m := range p.spec.Mounts {
			if m.Type == "bind" && !pinned[filepath.Clean(m.Destination)] {
				t.Fatalf("input %q: bind of %q at %q is not pinned", input, m.Source, m.Destination)
			}
		}
		if p.spec.Privileged || p.spec.HostPID || p.spec.HostIPC || p.spec.NewPrivileges && conf.Security.NoNewPrivileges || len(p.spec.Devices) > 0 || p.spec.SeccompProfile != "" {
			t.Fatalf("input %q passed a closed gate: %+v", input, p.spec)
		}
	})
}

// decodeJSONConfig decodes the task config as Nomad does (JSON job ->
// hcl2 spec -> msgpack) into cfg; false when Nomad would refuse it.
func decodeJSONConfig(input string, spec hcldec.Spec, cfg *drivers.TaskConfig) bool {
	var val map[string]any
	if err := json.Unmarshal([]byte(input), &val); err != nil {
		return false
	}
	v, diags, errs := hclutils.ParseHclInterface(val, spec, nil)
	if diags.HasErrors() || len(errs) > 0 {
		return false
	}
	return cfg.EncodeDriverConfig(v) == nil
}

func fuzzTask(t *testing.T, alloc string) *drivers.TaskConfig {
	cfg := &drivers.TaskConfig{ID: "task-1", Name: "web", AllocID: testAllocID, AllocDir: alloc, Env: map[string]string{}}
	td := cfg.TaskDir()
	for _, d := range []string{td.LocalDir, td.SecretsDir, td.LogDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return cfg
}

// FuzzVolume: a docker-form volume string is refused with an error naming
// the option, or gives a bind with a source and a target that may be
// mounted.
func FuzzVolume(f *testing.F) {
	fuzzOption(f, "parseVolume", "volumes[0]", parseVolume, func(t *testing.T, v string, m Mount) {
		target := filepath.Clean(m.Target)
		if m.Source == "" || !filepath.IsAbs(target) || target == "/" || target == "/proc" || strings.HasPrefix(target, "/proc/") ||
			target == "/alloc" || target == "/alloc/logs" || strings.HasPrefix(target, "/alloc/logs/") {
			t.Fatalf("parseVolume(%q) = %+v", v, m)
		}
	}, "data:/data", "/srv:/srv:ro", "a:/b:rw,rshared", "a:/proc", "a:b", "::", "a:/b:c:d", "../..:/up", "a:/:ro", "a:/x/../proc/1")
}

// FuzzDevice: a device string is refused with an error naming the option,
// or gives absolute paths and permissions of "rwm".
func FuzzDevice(f *testing.F) {
	fuzzOption(f, "parseDevice", "devices[0]", parseDevice, func(t *testing.T, v string, d DeviceRequest) {
		if !filepath.IsAbs(d.HostPath) || !filepath.IsAbs(d.ContainerPath) || d.Permissions == "" || strings.Trim(d.Permissions, "rwm") != "" {
			t.Fatalf("parseDevice(%q) = %+v", v, d)
		}
	}, "/dev/fuse", "/dev/sda:/dev/xvda:r", "/dev/a:/dev/b:rwm", "fuse", "/a:/b:", "/a:/proc/x", "/a:/b:rr")
}

// fuzzOption fuzzes parse, named name, of the option at path from seeds: a
// refusal must name the option, and check gets each value parse accepts.
func fuzzOption[T any](f *testing.F, name, path string, parse func(string, string) (T, error), check func(*testing.T, string, T), seeds ...string) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got, err := parse(path, v)
		if err != nil {
			if !strings.HasPrefix(err.Error(), path+": ") {
				t.Fatalf("%s(%q) error %q does not name the option", name, v, err)
			}
			return
		}
		check(t, v, got)
	})
}
