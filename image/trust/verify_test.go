package trust

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/hashicorp/go-hclog"
	"github.com/opencontainers/go-digest"
)

const repo = "team/app"

// setup is a fake registry holding the image "team/app:1", a verifier whose
// rule for the registry trusts key with policy, and the image's reference.
func setup(t *testing.T, referrersAPI bool, policy Policy, key *testKey) (*fakeRegistry, *Verifier, string, digest.Digest) {
	t.Helper()
	reg := newFakeRegistry(t, referrersAPI)
	cfg, err := ParseConfig("off", []RawRule{{Prefix: reg.Host + "/team/", PublicKeys: []string{key.pubPath}, Policy: string(policy)}})
	if err != nil {
		t.Fatal(err)
	}
	dgst := reg.putImage(repo, "1", "image one")
	return reg, NewVerifier(cfg, nil, hclog.NewNullLogger()), reg.Host + "/" + repo + ":1", dgst
}

func classicFor(t *testing.T, k *testKey, host string, d digest.Digest) classicLayer {
	p := simpleSigningPayload(host+"/"+repo, d)
	return classicLayer{payload: p, sig: k.sign(t, p)}
}

func TestVerifyLayouts(t *testing.T) {
	for _, tc := range []struct {
		name         string
		referrersAPI bool
		sign         func(t *testing.T, reg *fakeRegistry, k *testKey, d digest.Digest)
		layout       string
	}{
		{"classic tag", false, func(t *testing.T, reg *fakeRegistry, k *testKey, d digest.Digest) {
			reg.putClassic(repo, d, classicFor(t, k, reg.Host, d))
		}, LayoutTag},
		{"bundle referrer", true, func(t *testing.T, reg *fakeRegistry, k *testKey, d digest.Digest) {
			reg.putBundle(repo, d, dsseBundle(t, k, statementPayload(cosignSignPredicate, d)))
		}, LayoutBundleReferrer},
		{"bundle tag fallback", false, func(t *testing.T, reg *fakeRegistry, k *testKey, d digest.Digest) {
			reg.putBundle(repo, d, dsseBundle(t, k, statementPayload(cosignSignPredicate, d)))
		}, LayoutBundleTag},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newTestKey(t, "ecdsa")
			reg, v, ref, dgst := setup(t, tc.referrersAPI, PolicyEnforce, k)
			tc.sign(t, reg, k, dgst)
			res, err := v.Verify(context.Background(), ref, dgst)
			if err != nil {
				t.Fatal(err)
			}
			want := Result{Policy: PolicyEnforce, Rule: reg.Host + "/team/", Verified: true, KeyPath: k.pubPath, Layout: tc.layout}
			if res != want {
				t.Fatalf("got %+v, expected %+v", res, want)
			}
		})
	}
}

func TestVerifyEnforceUnsigned(t *testing.T) {
	k := newTestKey(t, "ecdsa")
	reg, v, ref, dgst := setup(t, false, PolicyEnforce, k)
	res, err := v.Verify(context.Background(), ref, dgst)
	var terr *Error
	if !errors.As(err, &terr) || !errors.Is(err, ErrNotVerified) {
		t.Fatalf("expected a *trust.Error, got %v", err)
	}
	if terr.Image != ref || terr.Digest != dgst || terr.Rule != reg.Host+"/team/" || res.Verified {
		t.Errorf("error fields %+v, result %+v", terr, res)
	}
	for _, s := range []string{ref, dgst.String(), `rule "` + reg.Host + `/team/"`, "no cosign signature found"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %q", err, s)
		}
	}
}

func TestVerifyEnforceRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		sign func(t *testing.T, reg *fakeRegistry, trusted, other *testKey, d, d2 digest.Digest)
		want string
	}{
		{"classic by another key", func(t *testing.T, reg *fakeRegistry, _, other *testKey, d, _ digest.Digest) {
			reg.putClassic(repo, d, classicFor(t, other, reg.Host, d))
		}, "not signed by any trusted key"},
		{"bundle by another key", func(t *testing.T, reg *fakeRegistry, _, other *testKey, d, _ digest.Digest) {
			reg.putBundle(repo, d, dsseBundle(t, other, statementPayload(cosignSignPredicate, d)))
		}, "not signed by any trusted key"},
		{"classic signature copied from another image", func(t *testing.T, reg *fakeRegistry, k, _ *testKey, d, d2 digest.Digest) {
			reg.putClassic(repo, d, classicFor(t, k, reg.Host, d2))
		}, "signed for another digest: the payload names " + "D2"},
		{"bundle copied from another image", func(t *testing.T, reg *fakeRegistry, k, _ *testKey, d, d2 digest.Digest) {
			reg.putBundle(repo, d, dsseBundle(t, k, statementPayload(cosignSignPredicate, d2)))
		}, "signed for another digest: the statement names sha256:"},
		{"attestation only", func(t *testing.T, reg *fakeRegistry, k, _ *testKey, d, _ digest.Digest) {
			reg.putBundle(repo, d, dsseBundle(t, k, statementPayload("https://slsa.dev/provenance/v1", d)))
		}, "an attestation is no signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, other := newTestKey(t, "ecdsa"), newTestKey(t, "ecdsa")
			reg, v, ref, dgst := setup(t, false, PolicyEnforce, k)
			d2 := reg.putImage(repo, "2", "image two")
			tc.sign(t, reg, k, other, dgst, d2)
			_, err := v.Verify(context.Background(), ref, dgst)
			want := strings.Replace(tc.want, "D2", d2.String(), 1)
			if !errors.Is(err, ErrNotVerified) || !strings.Contains(err.Error(), want) {
				t.Fatalf("got %v, expected a verification error containing %q", err, want)
			}
		})
	}
}

func TestVerifyAnyGoodSignature(t *testing.T) {
	k, other := newTestKey(t, "ed25519"), newTestKey(t, "ecdsa")
	reg, v, ref, dgst := setup(t, true, PolicyEnforce, k)
	reg.putBundle(repo, dgst, dsseBundle(t, other, statementPayload(cosignSignPredicate, dgst)))
	reg.putClassic(repo, dgst, classicFor(t, other, reg.Host, dgst), classicFor(t, k, reg.Host, dgst))
	res, err := v.Verify(context.Background(), ref, dgst)
	if err != nil || !res.Verified || res.Layout != LayoutTag || res.KeyPath != k.pubPath {
		t.Fatalf("got %+v, %v; expected verified through the second classic layer", res, err)
	}
}

func TestVerifyWarn(t *testing.T) {
	k := newTestKey(t, "ecdsa")
	reg, v, ref, dgst := setup(t, false, PolicyWarn, k)
	reg.putClassic(repo, dgst, classicFor(t, newTestKey(t, "ecdsa"), reg.Host, dgst))
	res, err := v.Verify(context.Background(), ref, dgst)
	if err != nil {
		t.Fatalf("warn returned an error: %v", err)
	}
	if res.Verified || res.Policy != PolicyWarn || !strings.Contains(res.Warning, dgst.String()) || !strings.Contains(res.Warning, "not signed by any trusted key") {
		t.Fatalf("got %+v, expected an unverified result with a warning", res)
	}
}

func TestVerifyOffMakesNoRequest(t *testing.T) {
	reg := newFakeRegistry(t, true)
	dgst := reg.putImage(repo, "1", "x")
	k := newTestKey(t, "ecdsa")
	cfg, err := ParseConfig("off", []RawRule{
		{Prefix: reg.Host + "/team/public/", Policy: "off", PublicKeys: []string{k.pubPath}},
		{Prefix: reg.Host + "/team/", PublicKeys: []string{k.pubPath}},
	})
	if err != nil {
		t.Fatal(err)
	}
	hosts := func(string) docker.RegistryHosts {
		t.Error("registry hosts asked for under policy off")
		return nil
	}
	v := NewVerifier(cfg, hosts, nil)
	for ref, rule := range map[string]string{
		reg.Host + "/team/public/app:1": reg.Host + "/team/public/",
		reg.Host + "/other/app:1":       DefaultRuleName,
		"busybox":                       DefaultRuleName,
	} {
		res, err := v.Verify(context.Background(), ref, dgst)
		if want := (Result{Policy: PolicyOff, Rule: rule}); err != nil || res != want {
			t.Errorf("%s: got %+v, %v; expected %+v", ref, res, err, want)
		}
	}
	if res, err := NewVerifier(nil, hosts, nil).Verify(context.Background(), reg.Host+"/team/app:1", dgst); err != nil || res.Policy != PolicyOff {
		t.Errorf("nil config: got %+v, %v", res, err)
	}
	if got := reg.requests(); len(got) != 0 {
		t.Errorf("requests under off: %v", got)
	}
}

func TestVerifyNeverResolvesTheTag(t *testing.T) {
	k := newTestKey(t, "ecdsa")
	reg, v, ref, dgst := setup(t, false, PolicyEnforce, k)
	reg.putClassic(repo, dgst, classicFor(t, k, reg.Host, dgst))
	// The tag moves to an unsigned image after the caller resolved it.
	reg.tag(repo, "1", reg.putImage(repo, "2", "unsigned"))
	res, err := v.Verify(context.Background(), ref, dgst)
	if err != nil || !res.Verified {
		t.Fatalf("got %+v, %v; expected the resolved digest verified", res, err)
	}
	for _, p := range reg.requests() {
		if strings.HasSuffix(p, "/manifests/1") || strings.HasSuffix(p, "/manifests/"+dgst.String()) {
			t.Errorf("request for the tag or image: %s", p)
		}
	}
}

func TestVerifyRegistryFailure(t *testing.T) {
	k := newTestKey(t, "ecdsa")
	reg, v, ref, dgst := setup(t, false, PolicyEnforce, k)
	reg.failStatus = http.StatusInternalServerError
	_, err := v.Verify(context.Background(), ref, dgst)
	var terr *Error
	if !errors.As(err, &terr) || terr.Err == nil || !strings.Contains(err.Error(), "failed to fetch signatures") {
		t.Fatalf("got %v, expected a verification error carrying the registry failure", err)
	}

	reg, v, ref, dgst = setup(t, false, PolicyWarn, k)
	reg.failStatus = http.StatusUnauthorized
	res, err := v.Verify(context.Background(), ref, dgst)
	if err != nil || res.Warning == "" {
		t.Fatalf("warn with a failing registry: got %+v, %v", res, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := v.Verify(ctx, ref, dgst); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: got %v", err)
	}
}

func TestVerifyBadInput(t *testing.T) {
	k := newTestKey(t, "ecdsa")
	_, v, ref, _ := setup(t, false, PolicyEnforce, k)
	if _, err := v.Verify(context.Background(), ref, "sha256:short"); err == nil || !strings.Contains(err.Error(), "invalid digest") {
		t.Errorf("bad digest: %v", err)
	}
}
