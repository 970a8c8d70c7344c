package driver

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/nomad/plugins/drivers"
	pstructs "github.com/hashicorp/nomad/plugins/shared/structs"
	"github.com/shoenig/test/must"
)

// cdiDevice is one device of a test CDI spec: a device node and an
// environment variable.
type cdiDevice struct {
	Name, Node, HostPath, Env string
}

// writeCDISpec writes a CDI spec of kind (vendor/class) into dir; every
// device injects its node and its variable, the spec as a whole
// CDI_SPEC=<kind>.
func writeCDISpec(t *testing.T, dir, file, kind string, devs ...cdiDevice) {
	t.Helper()
	type node struct {
		Path     string `json:"path"`
		HostPath string `json:"hostPath,omitempty"`
	}
	type edits struct {
		Env         []string `json:"env,omitempty"`
		DeviceNodes []node   `json:"deviceNodes,omitempty"`
	}
	type device struct {
		Name           string `json:"name"`
		ContainerEdits edits  `json:"containerEdits"`
	}
	spec := struct {
		Version        string   `json:"cdiVersion"`
		Kind           string   `json:"kind"`
		Devices        []device `json:"devices"`
		ContainerEdits edits    `json:"containerEdits"`
	}{Version: "0.6.0", Kind: kind, ContainerEdits: edits{Env: []string{"CDI_SPEC=" + kind}}}
	for _, d := range devs {
		e := edits{DeviceNodes: []node{{Path: d.Node, HostPath: d.HostPath}}}
		if d.Env != "" {
			e.Env = []string{d.Env}
		}
		spec.Devices = append(spec.Devices, device{Name: d.Name, ContainerEdits: e})
	}
	b, err := json.Marshal(spec)
	must.NoError(t, err)
	must.NoError(t, os.WriteFile(filepath.Join(dir, file), b, 0o644))
}

// checkParsed is one case of a table of configs: parse fails with an
// error containing wantErr, or succeeds and get of the result is want.
func checkParsed[C, T any](t *testing.T, parse func() (C, error), wantErr string, want T, get func(C) T) {
	t.Helper()
	c, err := parse()
	if wantErr != "" {
		must.ErrorContains(t, err, wantErr)
		return
	}
	must.NoError(t, err)
	must.Eq(t, want, get(c))
}

// pluginBody parses a plugin config body through the schema.
func pluginBody(t *testing.T, body string) func() (*Config, error) {
	return func() (*Config, error) { return parseConfig(decodePluginHCL(t, body)) }
}

func TestParseCDIConfig(t *testing.T) {
	cases := []struct {
		body string
		want CDIConfig
		err  string
	}{
		{body: "", want: CDIConfig{SpecDirs: []string{"/etc/cdi", "/var/run/cdi"}}},
		{body: "cdi {\n}", want: CDIConfig{SpecDirs: []string{"/etc/cdi", "/var/run/cdi"}}},
		{body: "cdi {\n spec_dirs = [\"/opt/cdi\"]\n allowed_devices = [\"nvidia.com/gpu=*\", \"vendor.com/fpga=0\"]\n}",
			want: CDIConfig{SpecDirs: []string{"/opt/cdi"}, AllowedDevices: []string{"nvidia.com/gpu=*", "vendor.com/fpga=0"}}},
		{body: "cdi {\n spec_dirs = [\"cdi\"]\n}", err: `cdi.spec_dirs: "cdi" must be an absolute path`},
		{body: "cdi {\n allowed_devices = [\"gpu\"]\n}", err: `cdi.allowed_devices: "gpu" must be a CDI device name or pattern such as "nvidia.com/gpu=*"`},
		{body: "cdi {\n allowed_devices = [\"nvidia.com/gpu=[\"]\n}", err: `cdi.allowed_devices: "nvidia.com/gpu=[" must be a CDI device name or pattern`},
	}
	for _, tc := range cases {
		t.Run(tc.body, func(t *testing.T) {
			checkParsed(t, pluginBody(t, tc.body), tc.err, tc.want, func(c *Config) CDIConfig { return c.CDI })
		})
	}
}

func TestParseCDIDevices(t *testing.T) {
	const img = "image = \"busybox:1\"\n"
	cases := []struct {
		body string
		want []string
		err  string
	}{
		{body: img},
		{body: img + `cdi_devices = ["nvidia.com/gpu=0", "vendor.com/class=GPU-1a:2"]`, want: []string{"nvidia.com/gpu=0", "vendor.com/class=GPU-1a:2"}},
		{body: img + `cdi_devices = ["nvidia.com/gpu"]`, err: `cdi_devices[0]: "nvidia.com/gpu" is not a CDI device name such as "nvidia.com/gpu=0"`},
		{body: img + `cdi_devices = ["nvidia.com/gpu=0", "gpu=0"]`, err: `cdi_devices[1]: "gpu=0" is not a CDI device name`},
		{body: img + `cdi_devices = ["nvidia.com/gpu=a/b"]`, err: `cdi_devices[0]: "nvidia.com/gpu=a/b" is not a CDI device name`},
	}
	for _, tc := range cases {
		t.Run(tc.body, func(t *testing.T) {
			parse := func() (*TaskConfig, error) { return parseTaskConfig(decodeTaskHCL(t, tc.body)) }
			checkParsed(t, parse, tc.err, tc.want, func(c *TaskConfig) []string { return c.CDIDevices })
		})
	}
}

func TestCDITaskDevices(t *testing.T) {
	dir := t.TempDir()
	writeCDISpec(t, dir, "nvidia.json", "nvidia.com/gpu",
		cdiDevice{Name: "GPU-aaa", Node: "/dev/nvidia0", HostPath: "/dev/null", Env: "GPU=aaa"},
		cdiDevice{Name: "GPU-bbb", Node: "/dev/nvidia1", HostPath: "/dev/null", Env: "GPU=bbb"})
	writeCDISpec(t, dir, "fpga.json", "vendor.com/fpga", cdiDevice{Name: "0", Node: "/dev/fpga0", Env: "FPGA=0"})
	must.NoError(t, os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte("cdiVersion: 0.6.0\nkind: broken\n"), 0o644))
	known := `known devices: ["nvidia.com/gpu=GPU-aaa" "nvidia.com/gpu=GPU-bbb" "vendor.com/fpga=0"]`
	reg := newCDIRegistry(CDIConfig{SpecDirs: []string{dir}, AllowedDevices: []string{"vendor.com/*", "nvidia.com/gpu=GPU-aaa"}})

	gpuEnv := func(v string) map[string]string { return map[string]string{nvidiaVisibleDevices: v} }
	cases := []struct {
		name    string
		env     map[string]string
		named   []string
		runtime string
		want    []string
		err     string
	}{
		{name: "nothing asked"},
		{name: "named", named: []string{"vendor.com/fpga=0"}, want: []string{"vendor.com/fpga=0"}},
		{name: "named, not allowed", named: []string{"nvidia.com/gpu=GPU-bbb"},
			err: `cdi_devices[0]: CDI device "nvidia.com/gpu=GPU-bbb" is refused: it is not in the plugin's cdi.allowed_devices ["vendor.com/*" "nvidia.com/gpu=GPU-aaa"]`},
		{name: "named, unknown", named: []string{"vendor.com/fpga=0", "vendor.com/fpga=9"},
			err: `cdi_devices[1]: CDI device "vendor.com/fpga=9" is not defined by any spec in ["` + dir + `"]; ` + known + `; specs that failed to load: ` + filepath.Join(dir, "broken.yaml")},
		{name: "nvidia device plugin's GPUs", env: gpuEnv("GPU-bbb,GPU-aaa"), want: []string{"nvidia.com/gpu=GPU-bbb", "nvidia.com/gpu=GPU-aaa"}},
		{name: "nvidia GPU needs no allow entry, named and reserved once", env: gpuEnv("GPU-aaa"), named: []string{"nvidia.com/gpu=GPU-aaa", "vendor.com/fpga=0"},
			want: []string{"nvidia.com/gpu=GPU-aaa", "vendor.com/fpga=0"}},
		{name: "nvidia GPU without a spec", env: gpuEnv("GPU-aaa, GPU-ccc"),
			err: `NVIDIA_VISIBLE_DEVICES=GPU-aaa, GPU-ccc: GPU reserved by Nomad's device plugin: CDI device "nvidia.com/gpu=GPU-ccc" is not defined by any spec in ["` + dir + `"]; ` + known},
		{name: "vendor runtime reads the variable itself", env: gpuEnv("GPU-ccc"), runtime: "nvidia"},
		{name: "none reserved", env: gpuEnv("void")},
		{name: "only the device environment counts", env: map[string]string{"OTHER": "GPU-aaa"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rt := tc.runtime
			if rt == "" {
				rt = "io.containerd.runc.v2"
			}
			got, err := reg.taskDevices(&drivers.TaskConfig{DeviceEnv: tc.env, Env: gpuEnv("GPU-bbb")}, tc.named, rt)
			if tc.err != "" {
				must.ErrorContains(t, err, tc.err)
				return
			}
			must.NoError(t, err)
			must.Eq(t, tc.want, got)
		})
	}
}

func TestCDIFingerprint(t *testing.T) {
	dir := t.TempDir()
	reg := newCDIRegistry(CDIConfig{SpecDirs: []string{dir, filepath.Join(dir, "absent")}})
	attrs := map[string]*pstructs.Attribute{}
	reg.fingerprint(attrs)
	must.MapEmpty(t, attrs)

	// a spec written after the plugin started counts at the next fingerprint
	writeCDISpec(t, dir, "nvidia.yaml", "nvidia.com/gpu",
		cdiDevice{Name: "all", Node: "/dev/nvidia0"}, cdiDevice{Name: "0", Node: "/dev/nvidia0"}, cdiDevice{Name: "GPU-aaa", Node: "/dev/nvidia0"})
	writeCDISpec(t, dir, "fpga.json", "vendor.com/fpga", cdiDevice{Name: "0", Node: "/dev/fpga0"})
	reg.fingerprint(attrs)
	must.MapLen(t, 2, attrs)
	gpus, _ := attrs["driver.containerd.cdi.nvidia.com/gpu"].GetString()
	must.Eq(t, "0,GPU-aaa,all", gpus)
	fpga, _ := attrs["driver.containerd.cdi.vendor.com/fpga"].GetString()
	must.Eq(t, "0", fpga)
}
