package driver

import (
	"errors"
	"fmt"
	"sync"
)

// errBeingRemoved is Reserve's error for a container the reconciler is
// removing: a start can be tried again once it is gone.
var errBeingRemoved = errors.New("is being removed as dangling; try again")

// taskStore maps Nomad task IDs to their handles, and knows which
// containers belong to those tasks, so that the dangling container
// reconciler never takes one that a start or a recovery is working on.
type taskStore struct {
	mu    sync.RWMutex
	tasks map[string]*storeEntry
	// removing holds the containers the reconciler is removing: no task
	// may claim them meanwhile.
	removing map[string]bool
	// held are containers of tasks whose state this plugin could not read:
	// they are left as they are, and never taken as dangling.
	held map[string]bool
}

// storeEntry is one task: reserved (h nil) while it starts or recovers.
type storeEntry struct {
	containerID string
	h           *taskHandle
}

func newTaskStore() *taskStore {
	return &taskStore{tasks: map[string]*storeEntry{}, removing: map[string]bool{}, held: map[string]bool{}}
}

// Set records the handle of a reserved task.
func (s *taskStore) Set(id string, h *taskHandle) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tasks[id] = &storeEntry{containerID: h.state.ContainerID, h: h}
}

// Reserve records task id with its container before the container is made
// or loaded. It fails when a task already holds id, so that two concurrent
// StartTask calls for one ID cannot both proceed, and while the reconciler
// removes that container.
func (s *taskStore) Reserve(id, containerID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tasks[id]; ok {
		return fmt.Errorf("task with ID %q is already started", id)
	}
	if s.removing[containerID] {
		return fmt.Errorf("container %s %w", containerID, errBeingRemoved)
	}
	s.tasks[id] = &storeEntry{containerID: containerID}
	return nil
}

func (s *taskStore) Get(id string) (*taskHandle, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.tasks[id]
	if !ok || e.h == nil {
		return nil, false
	}
	return e.h, true
}

func (s *taskStore) Delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tasks, id)
}

// Known reports whether a task (running, starting, recovering or being
// destroyed) holds containerID.
func (s *taskStore) Known(containerID string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.knownLocked(containerID)
}

// HeldByOther reports whether containerID is held by something other than
// task id: another task, a task this plugin could not read, or the
// reconciler removing it.
func (s *taskStore) HeldByOther(id, containerID string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.held[containerID] || s.removing[containerID] {
		return true
	}
	for tid, e := range s.tasks {
		if tid != id && e.containerID == containerID {
			return true
		}
	}
	return false
}

// Hold keeps the reconciler off containerID for the plugin's lifetime.
func (s *taskStore) Hold(containerID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held[containerID] = true
}

func (s *taskStore) knownLocked(containerID string) bool {
	if s.held[containerID] {
		return true
	}
	for _, e := range s.tasks {
		if e.containerID == containerID {
			return true
		}
	}
	return false
}

// ClaimDangling marks containerID as being removed, unless a task holds
// it; Reserve refuses it until ReleaseDangling.
func (s *taskStore) ClaimDangling(containerID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.knownLocked(containerID) || s.removing[containerID] {
		return false
	}
	s.removing[containerID] = true
	return true
}

// ReleaseDangling ends a claim of ClaimDangling.
func (s *taskStore) ReleaseDangling(containerID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.removing, containerID)
}
