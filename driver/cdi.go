package driver

import (
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/nomad/plugins/drivers"
	pstructs "github.com/hashicorp/nomad/plugins/shared/structs"
	"tags.cncf.io/container-device-interface/pkg/cdi"
	"tags.cncf.io/container-device-interface/pkg/parser"
)

const (
	// nvidiaVisibleDevices is what Nomad's nvidia device plugin reserves
	// GPUs with: their UUIDs, comma-separated.
	nvidiaVisibleDevices = "NVIDIA_VISIBLE_DEVICES"
	// nvidiaGPUKind is the CDI vendor and class `nvidia-ctk cdi generate`
	// writes for GPUs, named by index or UUID (its --device-name-strategy)
	// and "all".
	nvidiaGPUKind = "nvidia.com/gpu"
	// cdiAttrPrefix starts the fingerprint attributes naming the CDI
	// devices found, one per vendor/class.
	cdiAttrPrefix = "driver.containerd.cdi."
)

// CDIConfig is the validated cdi block of the plugin config.
type CDIConfig struct {
	// SpecDirs are the directories of CDI specs, later ones winning over
	// earlier ones for a device both define.
	SpecDirs []string
	// AllowedDevices are the CDI devices, or path.Match patterns of them
	// ("vendor.com/class=*"), a task may name in cdi_devices. Devices of a
	// reservation by a Nomad device plugin need no entry.
	AllowedDevices []string
}

type rawCDIConfig struct {
	SpecDirs       []string `codec:"spec_dirs"`
	AllowedDevices []string `codec:"allowed_devices"`
}

func parseCDIConfig(raw rawCDIConfig) (CDIConfig, error) {
	c := CDIConfig{SpecDirs: raw.SpecDirs, AllowedDevices: raw.AllowedDevices}
	if len(c.SpecDirs) == 0 { // no cdi block: the schema's defaults do not apply
		c.SpecDirs = slices.Clone(cdi.DefaultSpecDirs)
	}
	for _, d := range c.SpecDirs {
		if !filepath.IsAbs(d) {
			return c, fmt.Errorf("cdi.spec_dirs: %q must be an absolute path, such as %q", d, cdi.DefaultStaticDir)
		}
	}
	for _, p := range c.AllowedDevices {
		if _, err := path.Match(p, ""); err != nil || !strings.Contains(p, "/") {
			return c, fmt.Errorf("cdi.allowed_devices: %q must be a CDI device name or pattern such as %q", p, "nvidia.com/gpu=*")
		}
	}
	return c, nil
}

// parseCDIDevices checks the task's cdi_devices: fully qualified names.
func parseCDIDevices(names []string) ([]string, error) {
	for i, n := range names {
		if _, _, _, err := parser.ParseQualifiedName(n); err != nil {
			return nil, fmt.Errorf("cdi_devices[%d]: %q is not a CDI device name such as %q: %v", i, n, "nvidia.com/gpu=0", err)
		}
	}
	return slices.Clone(names), nil
}

// cdiRegistry holds the CDI specs of the plugin's spec directories. It is
// read again at every start that needs it and at every fingerprint, not
// watched: a spec written by `nvidia-ctk cdi generate` counts from the next
// start on.
type cdiRegistry struct {
	config CDIConfig
	cache  *cdi.Cache
}

func newCDIRegistry(c CDIConfig) *cdiRegistry {
	cache, _ := cdi.NewCache(cdi.WithSpecDirs(c.SpecDirs...), cdi.WithAutoRefresh(false)) // never fails
	return &cdiRegistry{config: c, cache: cache}
}

// addDevices puts the task's CDI devices (see taskDevices) into its spec.
func (r *cdiRegistry) addDevices(cfg *drivers.TaskConfig, named []string, p *plan) error {
	names, err := r.taskDevices(cfg, named, p.runtime)
	if err != nil || len(names) == 0 {
		return err
	}
	p.spec.CDIDevices, p.spec.CDI = names, r.cache
	return nil
}

// taskDevices is the CDI devices a task gets: those it names in
// cdi_devices (gated by cdi.allowed_devices) and the GPUs Nomad's nvidia
// device plugin reserved for it (NVIDIA_VISIBLE_DEVICES in the device
// environment, which the job cannot set), as nvidia.com/gpu=<uuid>. A
// task on another runtime than runc gets no GPU mapping: a vendor runtime
// (NVIDIA's) reads the variable itself. Every device must be defined in
// the spec directories.
func (r *cdiRegistry) taskDevices(cfg *drivers.TaskConfig, named []string, runtime string) ([]string, error) {
	gpus := visibleGPUs(cfg.DeviceEnv[nvidiaVisibleDevices])
	if !strings.HasPrefix(runtime, "io.containerd.runc.") {
		gpus = nil
	}
	if len(named) == 0 && len(gpus) == 0 {
		return nil, nil
	}
	_ = r.cache.Refresh() // a broken spec fails only the devices it defines; see unknown
	var out []string
	for i, n := range named {
		field := fmt.Sprintf("cdi_devices[%d]", i)
		if !slices.ContainsFunc(r.config.AllowedDevices, func(p string) bool { ok, _ := path.Match(p, n); return ok }) {
			return nil, fmt.Errorf("%s: CDI device %q is refused: it is not in the plugin's cdi.allowed_devices %q", field, n, r.config.AllowedDevices)
		}
		if r.cache.GetDevice(n) == nil {
			return nil, r.unknown(field, n)
		}
		out = appendNew(out, n)
	}
	for _, id := range gpus {
		n := nvidiaGPUKind + "=" + id
		if r.cache.GetDevice(n) == nil {
			return nil, fmt.Errorf("%s=%s: %w; write the node's GPU specs, named by UUID, with `nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml --device-name-strategy=uuid`",
				nvidiaVisibleDevices, cfg.DeviceEnv[nvidiaVisibleDevices], r.unknown("GPU reserved by Nomad's device plugin", n))
		}
		out = appendNew(out, n)
	}
	return out, nil
}

// unknown is the error for a device no spec defines: it names the spec
// directories, the devices they define and the specs that failed to load.
func (r *cdiRegistry) unknown(field, name string) error {
	known := r.cache.ListDevices()
	msg := fmt.Sprintf("%s: CDI device %q is not defined by any spec in %q; known devices: %q", field, name, r.config.SpecDirs, known)
	if bad := r.specErrors(); len(bad) > 0 {
		msg += fmt.Sprintf("; specs that failed to load: %s", strings.Join(bad, "; "))
	}
	return fmt.Errorf("%s", msg)
}

// specErrors lists the spec files that failed to load, with why.
func (r *cdiRegistry) specErrors() []string {
	var out []string
	for p, errs := range r.cache.GetErrors() {
		if len(errs) > 0 {
			out = append(out, fmt.Sprintf("%s: %v", p, errs[0]))
		}
	}
	sort.Strings(out)
	return out
}

// fingerprint sets, per CDI vendor/class defined in the spec directories,
// driver.containerd.cdi.<vendor>/<class> to its device names
// (comma-separated, sorted).
func (r *cdiRegistry) fingerprint(attrs map[string]*pstructs.Attribute) {
	_ = r.cache.Refresh()
	kinds := map[string][]string{}
	for _, d := range r.cache.ListDevices() {
		vendor, class, name := parser.ParseDevice(d)
		kind := vendor + "/" + class
		kinds[kind] = append(kinds[kind], name)
	}
	for kind, names := range kinds {
		sort.Strings(names)
		attrs[cdiAttrPrefix+kind] = pstructs.NewStringAttribute(strings.Join(names, ","))
	}
}

// visibleGPUs splits an NVIDIA_VISIBLE_DEVICES value into device names;
// "none" and "void" reserve none.
func visibleGPUs(v string) []string {
	var out []string
	for _, id := range strings.Split(v, ",") {
		id = strings.TrimSpace(id)
		if id != "" && id != "none" && id != "void" {
			out = appendNew(out, id)
		}
	}
	return out
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}
