package driver

import (
	"sort"
	"sync"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
)

// usedNamespaces are the containerd namespaces this plugin has tasks in
// besides its configured one: those saved in the states of the tasks it
// recovered, after an operator changed the plugin's namespace. Recovery
// and the dangling container reconciler look there too.
type usedNamespaces struct {
	mu  sync.Mutex
	set map[string]bool
}

func (u *usedNamespaces) add(ns string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.set == nil {
		u.set = map[string]bool{}
	}
	u.set[ns] = true
}

// list is the namespaces with current first, then the others in order.
func (u *usedNamespaces) list(current string) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]string, 0, len(u.set))
	for ns := range u.set {
		if ns != current {
			out = append(out, ns)
		}
	}
	sort.Strings(out)
	return append([]string{current}, out...)
}

// runtimeIn is st's runtime for containerd namespace ns; "" is the
// configured namespace (task states written before it was saved).
func (d *Driver) runtimeIn(st *state, ns string) *executor.Runtime {
	if ns == "" || ns == st.config.Namespace {
		return st.runtime
	}
	d.namespaces.add(ns)
	return executor.New(st.client, ns, d.logger)
}

// inConfiguredNamespace reports whether ns is the namespace the image
// manager and image GC of st work in ("" is).
func inConfiguredNamespace(st *state, ns string) bool {
	return ns == "" || ns == st.config.Namespace
}
