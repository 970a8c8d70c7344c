package trust

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

func TestThresholdKeys(t *testing.T) {
	k1, k2 := newTestKey(t, "ecdsa"), newTestKey(t, "ed25519")
	reg := newFakeRegistry(t, false)
	cfg, err := ParseConfig("off", []RawRule{{Prefix: reg.Host + "/team/", PublicKeys: []string{k1.pubPath, k2.pubPath}, Threshold: 2}})
	if err != nil {
		t.Fatal(err)
	}
	dgst := reg.putImage(repo, "1", "image one")
	ref := reg.Host + "/" + repo + ":1"
	reg.putClassic(repo, dgst, classicFor(t, k1, reg.Host, dgst), classicFor(t, k1, reg.Host, dgst))
	_, err = NewVerifier(cfg, nil, nil).Verify(context.Background(), ref, dgst)
	if !errors.Is(err, ErrNotVerified) || !strings.Contains(err.Error(), "only "+k1.pubPath+" signed; the rule's threshold needs 2 different signers") {
		t.Fatalf("one key signing twice: %v; expected a refusal naming the threshold", err)
	}
	reg.putClassic(repo, dgst, classicFor(t, k1, reg.Host, dgst), classicFor(t, k2, reg.Host, dgst))
	if res, err := NewVerifier(cfg, nil, nil).Verify(context.Background(), ref, dgst); err != nil || !res.Verified {
		t.Fatalf("both keys signing: %+v, %v; expected verified", res, err)
	}
}

func TestThresholdKeyAndIdentity(t *testing.T) {
	k := newTestKey(t, "ecdsa")
	vs := testbed.NewVirtualSigstore(t)
	reg := newFakeRegistry(t, true)
	cfg, err := ParseConfig("off", []RawRule{{Prefix: reg.Host + "/team/", PublicKeys: []string{k.pubPath},
		Identities: []RawIdentity{{Issuer: ciIssuer, Subject: ciWorkflow}}, TrustedRoot: vs.RootPath, Threshold: 2}})
	if err != nil {
		t.Fatal(err)
	}
	dgst := reg.putImage(repo, "1", "image one")
	ref := reg.Host + "/" + repo + ":1"
	reg.putBundle(repo, dgst, vs.SignImage(t, ciIssuer, ciWorkflow, dgst, testbed.BundleOptions{}))
	if _, err := NewVerifier(cfg, nil, nil).Verify(context.Background(), ref, dgst); !errors.Is(err, ErrNotVerified) || !strings.Contains(err.Error(), "threshold needs 2") {
		t.Fatalf("keyless only: %v; expected a refusal naming the threshold", err)
	}
	reg.putBundle(repo, dgst, dsseBundle(t, k, statementPayload(cosignSignPredicate, dgst)))
	if res, err := NewVerifier(cfg, nil, nil).Verify(context.Background(), ref, dgst); err != nil || !res.Verified {
		t.Fatalf("key and identity: %+v, %v; expected verified", res, err)
	}
}

func TestThresholdBounds(t *testing.T) {
	k := newTestKey(t, "ecdsa").pubPath
	for _, n := range []int{-1, 2} {
		_, err := ParseConfig("off", []RawRule{{Prefix: "r.example.com/", PublicKeys: []string{k}, Threshold: n}})
		if err == nil || !strings.Contains(err.Error(), "trust.rule[0].threshold: ") || !strings.Contains(err.Error(), "must be between 1 and the number of public keys and identities of the rule (1)") {
			t.Errorf("threshold %d: %v", n, err)
		}
	}
}
