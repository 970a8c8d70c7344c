package trust

import (
	"strconv"
	"strings"
)

// tally counts the distinct signers (keys, or certificate identities) of a
// digest until a rule's threshold is met.
type tally struct {
	need   int
	seen   map[string]bool
	first  signedBy
	layout string
	names  []string
}

func newTally(need int) *tally {
	if need < 1 {
		need = 1
	}
	return &tally{need: need, seen: map[string]bool{}}
}

// add counts by, found in layout, once; it reports whether the threshold
// is met.
func (t *tally) add(by signedBy, layout string) bool {
	name := by.identity
	if by.key != nil {
		name = by.key.path
	}
	if !t.seen[name] {
		t.seen[name] = true
		if len(t.names) == 0 {
			t.first, t.layout = by, layout
		}
		t.names = append(t.names, name)
	}
	return len(t.names) >= t.need
}

// short says how far the signers fell short, or "" when none verified.
func (t *tally) short() string {
	if len(t.names) == 0 {
		return ""
	}
	return "only " + strings.Join(t.names, ", ") + " signed; the rule's threshold needs " + strconv.Itoa(t.need) + " different signers"
}
