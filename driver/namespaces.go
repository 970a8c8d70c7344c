package driver

import (
	"sort"
	"sync"
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
