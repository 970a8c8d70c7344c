package trust

import (
	"context"
	"errors"
	"os"
	"testing"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/opencontainers/go-digest"
)

// verifyCounted verifies ref at dgst and returns the result and how many
// requests the registry saw for it.
func verifyCounted(t *testing.T, reg *fakeRegistry, v *Verifier, ref string, dgst digest.Digest) (Result, error, int) {
	t.Helper()
	before := len(reg.requests())
	res, err := v.Verify(context.Background(), ref, dgst)
	return res, err, len(reg.requests()) - before
}

func TestVerifyRemembersVerifiedDigests(t *testing.T) {
	k := newTestKey(t, "ecdsa")
	reg, v, ref, dgst := setup(t, false, PolicyEnforce, k)
	reg.putClassic(repo, dgst, classicFor(t, k, reg.Host, dgst))

	first, err, n := verifyCounted(t, reg, v, ref, dgst)
	if err != nil || !first.Verified || n == 0 {
		t.Fatalf("first verification: %+v, %v, %d requests", first, err, n)
	}
	// again, and under another tag of the same digest: nothing is asked
	for _, r := range []string{ref, reg.Host + "/" + repo + ":other"} {
		res, err, n := verifyCounted(t, reg, v, r, dgst)
		if err != nil || res != first || n != 0 {
			t.Fatalf("%s again: %+v, %v, %d requests; expected %+v from memory", r, res, err, n, first)
		}
	}
	// the same digest in another repository is verified there
	if _, err, n := verifyCounted(t, reg, v, reg.Host+"/team/other:1", dgst); !errors.Is(err, ErrNotVerified) || n == 0 {
		t.Fatalf("other repository: %v after %d requests; expected a verification that fails", err, n)
	}
	// a new config comes with a new Verifier: it asks again
	fresh := NewVerifier(v.cfg, nil, nil)
	if res, err, n := verifyCounted(t, reg, fresh, ref, dgst); err != nil || !res.Verified || n == 0 {
		t.Fatalf("new verifier: %+v, %v, %d requests; expected a verification against the registry", res, err, n)
	}
}

func TestVerifyForgetsNothingUnverified(t *testing.T) {
	for _, policy := range []Policy{PolicyEnforce, PolicyWarn} {
		t.Run(string(policy), func(t *testing.T) {
			reg, v, ref, dgst := setup(t, false, policy, newTestKey(t, "ecdsa"))
			for i := range 2 {
				res, err, n := verifyCounted(t, reg, v, ref, dgst)
				if res.Verified || n == 0 || (policy == PolicyEnforce) != (err != nil) {
					t.Fatalf("try %d: %+v, %v, %d requests; expected an unverified result from the registry", i, res, err, n)
				}
			}
		})
	}
}

func TestVerifyMemoryFollowsKeys(t *testing.T) {
	k, other := newTestKey(t, "ecdsa"), newTestKey(t, "ecdsa")
	reg, _, ref, dgst := setup(t, false, PolicyEnforce, k)
	reg.putClassic(repo, dgst, classicFor(t, k, reg.Host, dgst))
	// a rule not made by ParseConfig reads its key files at every check
	path := k.pubPath
	cfg := &Config{DefaultPolicy: PolicyOff, Rules: []Rule{{Prefix: reg.Host + "/team/", PublicKeys: []string{path}, Policy: PolicyEnforce}}}
	v := NewVerifier(cfg, nil, nil)
	if res, err, _ := verifyCounted(t, reg, v, ref, dgst); err != nil || !res.Verified {
		t.Fatalf("first verification: %+v, %v", res, err)
	}
	pem, err := os.ReadFile(other.pubPath)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, pem)
	if _, err, n := verifyCounted(t, reg, v, ref, dgst); !errors.Is(err, ErrNotVerified) || n == 0 {
		t.Fatalf("after the key changed: %v after %d requests; expected a failed verification against the registry", err, n)
	}
}

func TestVerifyMemoryIsBounded(t *testing.T) {
	k := newTestKey(t, "ecdsa")
	reg, v, ref, d1 := setup(t, false, PolicyEnforce, k)
	small, err := lru.New[string, Result](2)
	if err != nil {
		t.Fatal(err)
	}
	v.verified = small
	d2, d3 := reg.putImage(repo, "2", "image two"), reg.putImage(repo, "3", "image three")
	for _, d := range []digest.Digest{d1, d2, d3} {
		reg.putClassic(repo, d, classicFor(t, k, reg.Host, d))
		if res, err := v.Verify(context.Background(), ref, d); err != nil || !res.Verified {
			t.Fatalf("%s: %+v, %v", d, res, err)
		}
	}
	if _, err, n := verifyCounted(t, reg, v, ref, d3); err != nil || n != 0 {
		t.Fatalf("latest digest: %v, %d requests; expected it from memory", err, n)
	}
	if _, err, n := verifyCounted(t, reg, v, ref, d1); err != nil || n == 0 {
		t.Fatalf("oldest digest: %v, %d requests; expected it forgotten and asked again", err, n)
	}
}

// TestVerifyMemorySharedAcrossConfigs checks that a Memory kept across
// configs answers for the same rules and is not used once they change.
func TestVerifyMemorySharedAcrossConfigs(t *testing.T) {
	k := newTestKey(t, "ecdsa")
	reg, _, ref, dgst := setup(t, false, PolicyEnforce, k)
	reg.putClassic(repo, dgst, classicFor(t, k, reg.Host, dgst))
	rule := RawRule{Prefix: reg.Host + "/team/", PublicKeys: []string{k.pubPath}}
	parse := func(defaultPolicy string, rules ...RawRule) *Config {
		cfg, err := ParseConfig(defaultPolicy, rules)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	mem := NewMemory()
	first := NewVerifier(parse("off", rule), nil, nil).WithMemory(mem)
	if res, err, n := verifyCounted(t, reg, first, ref, dgst); err != nil || !res.Verified || n == 0 {
		t.Fatalf("first verification: %+v, %v, %d requests", res, err, n)
	}
	same := NewVerifier(parse("off", rule), nil, nil).WithMemory(mem)
	if res, err, n := verifyCounted(t, reg, same, ref, dgst); err != nil || !res.Verified || n != 0 {
		t.Fatalf("same rules: %+v, %v, %d requests; expected the verification from memory", res, err, n)
	}
	for name, cfg := range map[string]*Config{
		"default policy": parse("warn", rule),
		"another rule":   parse("off", rule, RawRule{Prefix: "registry.example.com/", PublicKeys: []string{k.pubPath}}),
	} {
		changed := NewVerifier(cfg, nil, nil).WithMemory(mem)
		if res, err, n := verifyCounted(t, reg, changed, ref, dgst); err != nil || !res.Verified || n == 0 {
			t.Fatalf("%s changed: %+v, %v, %d requests; expected a verification against the registry", name, res, err, n)
		}
	}
}
