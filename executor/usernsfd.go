package executor

import (
	"os"
	"sync"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/opencontainers/runtime-spec/specs-go"
)

// User namespaces for idmapped mounts: one holds a mapping and no process
// (a descriptor keeps it), and a mount keeps its own reference to the
// namespace it was idmapped with. Making one re-executes this process
// (containerd's mount.GetUsernsFD): a fork that cannot share memory, as a
// new user namespace needs, which on a small VM costs some milliseconds
// and stalls the process's other threads while its page tables are
// copied. So one is made ahead, in the background, for the range the next
// start will likely get (WarmUserNS), and a start in that range takes it.
var aheadNS = &usernsAhead{}

type usernsAhead struct {
	mu   sync.Mutex
	next *madeNS
}

// madeNS is a user namespace in the making or made.
type madeNS struct {
	idmap string
	done  chan struct{}
	f     *os.File
	err   error
}

// WarmUserNS makes the user namespace of mapping m in the background, for
// the next staging with m; it replaces one made ahead for another mapping.
// One is made at a time: while one is in the making, it does nothing (a
// burst of starts makes no burst of forks).
func WarmUserNS(m []specs.LinuxIDMapping) {
	if len(m) == 0 {
		return
	}
	idmap := idMapString(m)
	aheadNS.mu.Lock()
	defer aheadNS.mu.Unlock()
	if n := aheadNS.next; n != nil {
		if n.idmap == idmap {
			return
		}
		select {
		case <-n.done:
			go n.drop()
		default:
			return
		}
	}
	n := &madeNS{idmap: idmap, done: make(chan struct{})}
	aheadNS.next = n
	go func() {
		defer close(n.done)
		n.f, n.err = mount.GetUsernsFD(idmap, idmap)
	}()
}

// usernsFD returns a user namespace of idmap (core/mount's
// "container:host:size[,...]" form, for users and groups alike), which the
// caller closes: the one made ahead when it has this mapping, else a new
// one.
func usernsFD(idmap string) (*os.File, error) {
	aheadNS.mu.Lock()
	n := aheadNS.next
	if n != nil && n.idmap == idmap {
		aheadNS.next = nil
	} else {
		n = nil
	}
	aheadNS.mu.Unlock()
	if n == nil {
		return mount.GetUsernsFD(idmap, idmap)
	}
	<-n.done
	if n.err != nil {
		return mount.GetUsernsFD(idmap, idmap)
	}
	return n.f, nil
}

// drop closes the namespace once made.
func (n *madeNS) drop() {
	<-n.done
	if n.f != nil {
		n.f.Close()
	}
}
