// Package userns hands out the host ID ranges that tasks' user namespaces
// map their IDs onto: one block of Size IDs per task, never shared by two
// live tasks. It is pure (no I/O) and safe for concurrent use.
package userns

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// Size is the number of IDs of one task's range: a whole 16-bit ID space,
// so that every user and group an image names (nobody is 65534) maps.
const Size = 65536

// Range is a block of host IDs; the task's IDs 0..Size-1 map onto
// Start..Start+Size-1, for users and groups alike.
type Range struct {
	Start uint32
	Size  uint32
}

// end is one past the range's last ID.
func (r Range) end() uint64 { return uint64(r.Start) + uint64(r.Size) }

func (r Range) overlaps(o Range) bool {
	return uint64(r.Start) < o.end() && uint64(o.Start) < r.end()
}

// String reads as "100000-165535".
func (r Range) String() string { return fmt.Sprintf("%d-%d", r.Start, r.end()-1) }

// ParseRange reads a range written by String.
func ParseRange(s string) (Range, error) {
	first, last, ok := strings.Cut(s, "-")
	lo, err1 := strconv.ParseUint(first, 10, 32)
	hi, err2 := strconv.ParseUint(last, 10, 32)
	if !ok || err1 != nil || err2 != nil || hi < lo || hi >= 1<<32-1 {
		return Range{}, fmt.Errorf("%q is not a range of host IDs such as \"100000-165535\"", s)
	}
	return Range{Start: uint32(lo), Size: uint32(hi - lo + 1)}, nil
}

// Mappings is the range as the OCI spec's (and the snapshotter's) ID
// mappings: the container's 0 onwards onto the range.
func (r Range) Mappings() []specs.LinuxIDMapping {
	return []specs.LinuxIDMapping{{ContainerID: 0, HostID: r.Start, Size: r.Size}}
}

// ErrExhausted says that every slot of the pool is taken.
var ErrExhausted = errors.New("every ID range of the pool is taken")

// Pool hands out the Size-ID slots of the host IDs start..start+count-1.
type Pool struct {
	start uint32
	slots uint32

	mu sync.Mutex
	// owners holds every live range by its owner (a task ID), those the
	// pool handed out and those restored from tasks' state.
	owners map[string]Range
	// taken marks the pool's slots that a live range covers.
	taken map[uint32]string
	// next is where the search for a free slot starts (next fit), so that
	// a released range is not handed out again at once.
	next uint32
}

// NewPool is the pool of host IDs start..start+count-1; count must be a
// positive multiple of Size and the range must end below 2^32.
func NewPool(start, count uint32) (*Pool, error) {
	if count == 0 || count%Size != 0 {
		return nil, fmt.Errorf("range_count: %d must be a positive multiple of %d (one task's IDs)", count, Size)
	}
	if uint64(start)+uint64(count) > 1<<32-1 {
		return nil, fmt.Errorf("range_start + range_count: %d + %d must stay below 4294967295 (the kernel's largest ID is reserved)", start, count)
	}
	return &Pool{start: start, slots: count / Size, owners: map[string]Range{}, taken: map[uint32]string{}}, nil
}

// slotRange is the range of slot i.
func (p *Pool) slotRange(i uint32) Range { return Range{Start: p.start + i*Size, Size: Size} }

// slotsOf are the pool's slots that r overlaps.
func (p *Pool) slotsOf(r Range) []uint32 {
	lo, hi := uint64(p.start), uint64(p.start)+uint64(p.slots)*Size
	if r.end() <= lo || uint64(r.Start) >= hi || r.Size == 0 {
		return nil
	}
	first := (max(uint64(r.Start), lo) - lo) / Size
	last := (min(r.end(), hi) - 1 - lo) / Size
	var s []uint32
	for i := first; i <= last; i++ {
		s = append(s, uint32(i))
	}
	return s
}

// Reserve hands owner a free slot; an owner that holds a range already
// gets that one again.
func (p *Pool) Reserve(owner string) (Range, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.owners[owner]; ok {
		return r, nil
	}
	if i, ok := p.firstFree(); ok {
		r := p.slotRange(i)
		p.owners[owner] = r
		p.taken[i] = owner
		p.next = (i + 1) % p.slots
		return r, nil
	}
	return Range{}, fmt.Errorf("failed to reserve host IDs for %s: %w (%d ranges of %d IDs from %d)", owner, ErrExhausted, p.slots, Size, p.start)
}

// Peek is the range Reserve would hand out next, if one is free.
func (p *Pool) Peek() (Range, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i, ok := p.firstFree(); ok {
		return p.slotRange(i), true
	}
	return Range{}, false
}

func (p *Pool) isTaken(i uint32) bool {
	_, used := p.taken[i]
	return used
}

// firstFree is the first free slot from next on (next fit).
func (p *Pool) firstFree() (uint32, bool) {
	for n := uint32(0); n < p.slots; n++ {
		if i := (p.next + n) % p.slots; !p.isTaken(i) {
			return i, true
		}
	}
	return 0, false
}

// Restore records the range a recovered task's state holds, so that it is
// handed out to nobody else. The range may lie outside the pool (the plugin
// config changed since): the slots it overlaps are taken all the same. A
// range that overlaps another owner's is refused.
func (p *Pool) Restore(owner string, r Range) error {
	if r.Size == 0 || r.end() > 1<<32-1 {
		return fmt.Errorf("failed to restore host IDs %s of %s: not a valid range", r, owner)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if have, ok := p.owners[owner]; ok {
		if have == r {
			return nil
		}
		return fmt.Errorf("failed to restore host IDs %s of %s: it holds %s already", r, owner, have)
	}
	for o, have := range p.owners {
		if have.overlaps(r) {
			return fmt.Errorf("failed to restore host IDs %s of %s: they overlap %s of %s", r, owner, have, o)
		}
	}
	p.owners[owner] = r
	for _, i := range p.slotsOf(r) {
		p.taken[i] = owner
	}
	return nil
}

// Release frees owner's range; releasing one that holds none does nothing.
func (p *Pool) Release(owner string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.owners[owner]
	if !ok {
		return
	}
	delete(p.owners, owner)
	for _, i := range p.slotsOf(r) {
		delete(p.taken, i)
		// a slot stays taken while another restored range covers part of it
		for o, have := range p.owners {
			if have.overlaps(p.slotRange(i)) {
				p.taken[i] = o
				break
			}
		}
	}
}

// Live are the live ranges by owner, sorted by start.
func (p *Pool) Live() []Owned {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Owned, 0, len(p.owners))
	for o, r := range p.owners {
		out = append(out, Owned{Owner: o, Range: r})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	return out
}

// Owned is a live range and who holds it.
type Owned struct {
	Owner string
	Range
}
