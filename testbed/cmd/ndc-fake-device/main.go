// Command ndc-fake-device is a Nomad device plugin (Nomad v1.6.1's device
// plugin SDK) for tests: it makes fake character devices, device nodes
// with the major and minor numbers of a host device (`like`), in its `dir`,
// fingerprints them as one device group and reserves them as Nomad's
// device plugins do: each device node at /dev/<id>, a read-only mount of a
// file describing it at /var/run/ndc-fake/<id>, and the reserved IDs,
// comma-separated, in the environment variable `env` (set it to
// NVIDIA_VISIBLE_DEVICES to stand in for Nomad's nvidia plugin).
//
//	plugin "ndc-fake-device" {
//	  config {
//	    dir    = "/tmp/fake-devices"
//	    like   = "/dev/fuse"
//	    vendor = "nvidia"
//	    type   = "gpu"
//	    count  = 2
//	    env    = "NVIDIA_VISIBLE_DEVICES"
//	  }
//	}
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/hashicorp/nomad/plugins/device"
	"github.com/hashicorp/nomad/plugins/shared/hclspec"
	pstructs "github.com/hashicorp/nomad/plugins/shared/structs"
	"golang.org/x/sys/unix"
)

// Name is the plugin's name: its file name in plugin_dir and the label of
// its plugin block.
const Name = "ndc-fake-device"

var configSpec = hclspec.NewObject(map[string]*hclspec.Spec{
	"dir":    hclspec.NewAttr("dir", "string", true),
	"like":   hclspec.NewDefault(hclspec.NewAttr("like", "string", false), hclspec.NewLiteral(`"/dev/null"`)),
	"vendor": hclspec.NewDefault(hclspec.NewAttr("vendor", "string", false), hclspec.NewLiteral(`"ndc"`)),
	"type":   hclspec.NewDefault(hclspec.NewAttr("type", "string", false), hclspec.NewLiteral(`"fake"`)),
	"name":   hclspec.NewDefault(hclspec.NewAttr("name", "string", false), hclspec.NewLiteral(`"Fake Device"`)),
	"count":  hclspec.NewDefault(hclspec.NewAttr("count", "number", false), hclspec.NewLiteral("2")),
	"env":    hclspec.NewDefault(hclspec.NewAttr("env", "string", false), hclspec.NewLiteral(`"NDC_FAKE_DEVICES"`)),
})

type config struct {
	Dir    string `codec:"dir"`
	Like   string `codec:"like"`
	Vendor string `codec:"vendor"`
	Type   string `codec:"type"`
	Name   string `codec:"name"`
	Count  int    `codec:"count"`
	Env    string `codec:"env"`
}

type fakeDevice struct {
	logger hclog.Logger
	config config
	ids    []string
}

func main() {
	plugins.Serve(func(l hclog.Logger) interface{} { return &fakeDevice{logger: l.Named(Name)} })
}

func (d *fakeDevice) PluginInfo() (*base.PluginInfoResponse, error) {
	return &base.PluginInfoResponse{
		Type:              base.PluginTypeDevice,
		PluginApiVersions: []string{device.ApiVersion010},
		PluginVersion:     "0.1.0",
		Name:              Name,
	}, nil
}

func (d *fakeDevice) ConfigSchema() (*hclspec.Spec, error) { return configSpec, nil }

// SetConfig makes the device nodes (again): <dir>/GPU-fake-<i>, each with
// the numbers of `like`, and a file describing it.
func (d *fakeDevice) SetConfig(c *base.Config) error {
	var cfg config
	if err := base.MsgPackDecode(c.PluginConfig, &cfg); err != nil {
		return fmt.Errorf("failed to decode config: %w", err)
	}
	if !filepath.IsAbs(cfg.Dir) {
		return fmt.Errorf("dir: %q must be an absolute path", cfg.Dir)
	}
	var st unix.Stat_t
	if err := unix.Stat(cfg.Like, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
		return fmt.Errorf("like: %q must be a character device (%v)", cfg.Like, err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("failed to make dir: %w", err)
	}
	var ids []string
	for i := range cfg.Count {
		id := fmt.Sprintf("GPU-fake-%d", i)
		node := filepath.Join(cfg.Dir, id)
		_ = os.Remove(node)
		if err := unix.Mknod(node, unix.S_IFCHR|0o600, int(st.Rdev)); err != nil {
			return fmt.Errorf("failed to make device node %s: %w", node, err)
		}
		info := fmt.Sprintf("%s like %s\n", id, cfg.Like)
		if err := os.WriteFile(node+".info", []byte(info), 0o644); err != nil {
			return fmt.Errorf("failed to write device info: %w", err)
		}
		ids = append(ids, id)
	}
	d.config, d.ids = cfg, ids
	d.logger.Info("fake devices made", "dir", cfg.Dir, "like", cfg.Like, "ids", strings.Join(ids, ","))
	return nil
}

// Fingerprint reports the devices once; they never change.
func (d *fakeDevice) Fingerprint(ctx context.Context) (<-chan *device.FingerprintResponse, error) {
	ch := make(chan *device.FingerprintResponse, 1)
	group := &device.DeviceGroup{
		Vendor:     d.config.Vendor,
		Type:       d.config.Type,
		Name:       d.config.Name,
		Attributes: map[string]*pstructs.Attribute{"like": pstructs.NewStringAttribute(d.config.Like)},
	}
	for _, id := range d.ids {
		group.Devices = append(group.Devices, &device.Device{ID: id, Healthy: true})
	}
	ch <- device.NewFingerprint(group)
	go func() {
		<-ctx.Done()
		close(ch)
	}()
	return ch, nil
}

// Reserve hands out the device nodes, a mount of their info files and the
// environment variable naming them.
func (d *fakeDevice) Reserve(ids []string) (*device.ContainerReservation, error) {
	if len(ids) == 0 {
		return nil, fmt.Errorf("no device ids given")
	}
	res := &device.ContainerReservation{Envs: map[string]string{d.config.Env: strings.Join(ids, ",")}}
	for _, id := range ids {
		node := filepath.Join(d.config.Dir, id)
		if _, err := os.Stat(node); err != nil {
			return nil, fmt.Errorf("unknown device %q: %w", id, err)
		}
		res.Devices = append(res.Devices, &device.DeviceSpec{TaskPath: "/dev/" + id, HostPath: node, CgroupPerms: "rw"})
		res.Mounts = append(res.Mounts, &device.Mount{TaskPath: "/var/run/ndc-fake/" + id, HostPath: node + ".info", ReadOnly: true})
	}
	return res, nil
}

// Stats reports the devices once, and nothing after.
func (d *fakeDevice) Stats(ctx context.Context, _ time.Duration) (<-chan *device.StatsResponse, error) {
	ch := make(chan *device.StatsResponse, 1)
	group := &device.DeviceGroupStats{Vendor: d.config.Vendor, Type: d.config.Type, Name: d.config.Name, InstanceStats: map[string]*device.DeviceStats{}}
	for _, id := range d.ids {
		group.InstanceStats[id] = &device.DeviceStats{Summary: &pstructs.StatValue{StringVal: pointer("ok")}, Timestamp: time.Now()}
	}
	ch <- &device.StatsResponse{Groups: []*device.DeviceGroupStats{group}}
	go func() {
		<-ctx.Done()
		close(ch)
	}()
	return ch, nil
}

func pointer[T any](v T) *T { return &v }
