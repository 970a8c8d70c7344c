package preflight

import (
	"debug/elf"
	"fmt"
	"os"
	"sort"
	"strings"

	"tags.cncf.io/container-device-interface/pkg/cdi"
)

// checkFeatures checks what optional task features need of the node: the
// init binary of `init = true` and the CDI specs of `cdi_devices` and of
// GPUs reserved by Nomad's nvidia plugin. A missing one fails only the
// tasks that ask for the feature, so it warns rather than fails.
func checkFeatures(conf *config) []Result {
	return []Result{checkInit(conf.Limits.InitPath), checkCDI(conf.CDI.SpecDirs)}
}

// checkInit looks at init_path: an executable, statically linked file (a
// dynamic one fails in an image without its libraries).
func checkInit(path string) Result {
	r := Result{Name: "init"}
	fix := "install Debian's tini package (/usr/bin/tini-static) or set init_path to a static init binary"
	st, err := os.Stat(path)
	switch {
	case err != nil:
		r.Status, r.Detail, r.Fix = Warn, fmt.Sprintf("init_path %s: %v; tasks with init = true fail to start", path, errText(err)), fix
		return r
	case !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0:
		r.Status, r.Detail, r.Fix = Warn, fmt.Sprintf("init_path %s is not an executable file; tasks with init = true fail to start", path), fix
		return r
	}
	f, err := elf.Open(path)
	if err != nil {
		r.Status, r.Detail, r.Fix = Warn, fmt.Sprintf("init_path %s is not an ELF binary: %v", path, err), fix
		return r
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			r.Status, r.Detail, r.Fix = Warn, fmt.Sprintf("init_path %s is dynamically linked; it runs only in images that carry its libraries", path), fix
			return r
		}
	}
	r.Status, r.Detail = Pass, fmt.Sprintf("init_path %s: static binary for init = true", path)
	return r
}

// checkCDI loads the CDI specs with the library the driver injects them
// with and lists the devices they define; a spec that does not load is a
// failure, since the devices it defines cannot be given to a task.
func checkCDI(dirs []string) Result {
	r := Result{Name: "cdi"}
	cache, err := cdi.NewCache(cdi.WithSpecDirs(dirs...), cdi.WithAutoRefresh(false))
	if err != nil {
		r.Status, r.Detail = Fail, fmt.Sprintf("cdi.spec_dirs %q: %v", dirs, err)
		return r
	}
	var bad []string
	for file, errs := range cache.GetErrors() {
		if len(errs) > 0 {
			bad = append(bad, fmt.Sprintf("%s: %v", file, errs[0]))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		r.Status, r.Detail = Fail, fmt.Sprintf("cdi.spec_dirs %q: specs that failed to load: %s", dirs, strings.Join(bad, "; "))
		r.Fix = "correct or remove those spec files (for NVIDIA GPUs, regenerate them with `nvidia-ctk cdi generate --device-name-strategy=uuid`)"
		return r
	}
	r.Status = Pass
	r.Detail = fmt.Sprintf("cdi.spec_dirs %q: devices %s", dirs, orNone(cache.ListDevices()))
	return r
}
