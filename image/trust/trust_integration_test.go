//go:build integration

package trust

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/remotes/docker/config"
	"github.com/hashicorp/go-hclog"
	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// images are three distinct images: busybox and two derived from it.
func images(t *testing.T) [3]*testbed.Image {
	t.Helper()
	bb, err := testbed.BuildBusybox()
	if err != nil {
		t.Fatal(err)
	}
	out := [3]*testbed.Image{bb}
	for i := 1; i < 3; i++ {
		if out[i], err = bb.Derive(func(c *ocispec.ImageConfig) { c.Env = append(c.Env, fmt.Sprintf("VARIANT=%d", i)) }); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func push(t *testing.T, reg *testbed.Registry, img *testbed.Image, repoTag string) digest.Digest {
	t.Helper()
	d, err := reg.Push(context.Background(), img, repoTag)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func sign(t *testing.T, c *testbed.Cosign, key, ref string, o testbed.SignOptions) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.Sign(ctx, key, ref, o); err != nil {
		t.Fatal(err)
	}
}

// verifier enforces (or policy) keys on the registry's "demo/" images.
func verifier(t *testing.T, host string, policy Policy, hosts func(string) docker.RegistryHosts, keys ...string) (*Verifier, string) {
	t.Helper()
	prefix := host + "/demo/"
	cfg, err := ParseConfig("off", []RawRule{{Prefix: prefix, PublicKeys: keys, Policy: string(policy)}})
	if err != nil {
		t.Fatal(err)
	}
	return NewVerifier(cfg, hosts, hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug})), prefix
}

// copyManifest tags the manifest tagged from as to, in repo.
func copyManifest(t *testing.T, reg *testbed.Registry, repo, from, to string) {
	t.Helper()
	hc := reg.HTTPClient()
	req, _ := http.NewRequest(http.MethodGet, reg.URL()+"/v2/"+repo+"/manifests/"+from, nil)
	req.Header.Set("Accept", ocispec.MediaTypeImageManifest+", "+ocispec.MediaTypeImageIndex)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("get %s:%s: %s", repo, from, resp.Status)
	}
	req, _ = http.NewRequest(http.MethodPut, reg.URL()+"/v2/"+repo+"/manifests/"+to, bytes.NewReader(b))
	req.Header.Set("Content-Type", resp.Header.Get("Content-Type"))
	if resp, err = hc.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("put %s:%s: %s", repo, to, resp.Status)
	}
}

func sigTag(d digest.Digest) string { return strings.Replace(d.String(), ":", "-", 1) }

func expectVerified(t *testing.T, v *Verifier, ref string, d digest.Digest, key, layout string) {
	t.Helper()
	res, err := v.Verify(context.Background(), ref, d)
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	if !res.Verified || res.KeyPath != key || res.Layout != layout || res.Policy != PolicyEnforce {
		t.Fatalf("%s: got %+v, expected verified by %s in layout %s", ref, res, key, layout)
	}
}

func expectRejected(t *testing.T, v *Verifier, ref string, d digest.Digest, rule, reason string) {
	t.Helper()
	_, err := v.Verify(context.Background(), ref, d)
	var terr *Error
	if !errors.As(err, &terr) {
		t.Fatalf("%s: got %v, expected a *trust.Error", ref, err)
	}
	if terr.Image != ref || terr.Digest != d || terr.Rule != rule {
		t.Errorf("%s: error fields %q %q %q", ref, terr.Image, terr.Digest, terr.Rule)
	}
	for _, s := range []string{ref, d.String(), rule, reason} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
}

func TestCosignSignatures(t *testing.T) {
	reg := testbed.StartRegistry(t)
	cos := testbed.NewCosign(t)
	k1, k2 := cos.GenerateKeyPair(t, "k1"), cos.GenerateKeyPair(t, "k2")
	imgs := images(t)
	base := reg.Host + "/demo/"
	var d [3]digest.Digest
	for _, repo := range []string{"classic", "bundle"} {
		d[0] = push(t, reg, imgs[0], "demo/"+repo+":1")
		d[1] = push(t, reg, imgs[1], "demo/"+repo+":2")
	}
	d[2] = push(t, reg, imgs[2], "demo/unsigned:1")
	opts := testbed.SignOptionsFor(reg)
	classic := opts
	classic.Classic = true
	sign(t, cos, k1.Private, base+"classic@"+d[0].String(), classic)
	sign(t, cos, k1.Private, base+"bundle@"+d[0].String(), opts)
	cos.CheckOffline(t)

	enforce1, rule := verifier(t, reg.Host, PolicyEnforce, nil, k1.Public)
	classicRef, bundleRef := base+"classic:1", base+"bundle:1"

	t.Run("verified with the signing key", func(t *testing.T) {
		expectVerified(t, enforce1, classicRef, d[0], k1.Public, LayoutTag)
		// docker-registry 2.8 has no referrers API: cosign v3 writes the
		// referrers tag fallback.
		expectVerified(t, enforce1, bundleRef, d[0], k1.Public, LayoutBundleTag)
		both, _ := verifier(t, reg.Host, PolicyEnforce, nil, k2.Public, k1.Public)
		expectVerified(t, both, classicRef, d[0], k1.Public, LayoutTag)
		expectVerified(t, both, bundleRef, d[0], k1.Public, LayoutBundleTag)
	})
	t.Run("unsigned image fails under enforce", func(t *testing.T) {
		expectRejected(t, enforce1, base+"unsigned:1", d[2], rule, "no cosign signature found")
		expectRejected(t, enforce1, base+"classic:2", d[1], rule, "no cosign signature found")
	})
	t.Run("signature by another key fails", func(t *testing.T) {
		enforce2, _ := verifier(t, reg.Host, PolicyEnforce, nil, k2.Public)
		expectRejected(t, enforce2, classicRef, d[0], rule, "not signed by any trusted key")
		expectRejected(t, enforce2, bundleRef, d[0], rule, "not signed by any trusted key")
	})
	t.Run("warn reports instead of failing", func(t *testing.T) {
		warn, _ := verifier(t, reg.Host, PolicyWarn, nil, k2.Public)
		res, err := warn.Verify(context.Background(), classicRef, d[0])
		if err != nil || res.Verified || res.Policy != PolicyWarn || !strings.Contains(res.Warning, "not signed by any trusted key") {
			t.Fatalf("got %+v, %v; expected a warning", res, err)
		}
		res, err = warn.Verify(context.Background(), base+"unsigned:1", d[2])
		if err != nil || !strings.Contains(res.Warning, d[2].String()) {
			t.Fatalf("got %+v, %v; expected a warning naming the digest", res, err)
		}
	})
	t.Run("off makes no registry request", func(t *testing.T) {
		hosts := func(string) docker.RegistryHosts {
			t.Error("registry hosts asked for under policy off")
			return nil
		}
		off, _ := verifier(t, reg.Host, PolicyOff, hosts, k1.Public)
		if res, err := off.Verify(context.Background(), base+"unsigned:1", d[2]); err != nil || res.Policy != PolicyOff || res.Verified {
			t.Fatalf("got %+v, %v", res, err)
		}
	})
	t.Run("signature copied onto another digest fails", func(t *testing.T) {
		copyManifest(t, reg, "demo/classic", sigTag(d[0])+".sig", sigTag(d[1])+".sig")
		copyManifest(t, reg, "demo/bundle", sigTag(d[0]), sigTag(d[1]))
		expectRejected(t, enforce1, base+"classic:2", d[1], rule, "signed for another digest: the payload names "+d[0].String())
		expectRejected(t, enforce1, base+"bundle:2", d[1], rule, "signed for another digest")
	})
	t.Run("tag moved after resolution", func(t *testing.T) {
		moving := base + "moving:1"
		resolved := push(t, reg, imgs[0], "demo/moving:1")
		sign(t, cos, k1.Private, base+"moving@"+resolved.String(), classic)
		push(t, reg, imgs[1], "demo/moving:1") // the tag now names an unsigned image
		expectVerified(t, enforce1, moving, resolved, k1.Public, LayoutTag)
		expectRejected(t, enforce1, moving, d[1], rule, "no cosign signature found")
	})
	t.Run("rsa key imported into cosign", func(t *testing.T) {
		priv, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		kr := cos.ImportKeyPair(t, "rsa", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(priv)}))
		dr := push(t, reg, imgs[2], "demo/rsa:1")
		sign(t, cos, kr.Private, base+"rsa@"+dr.String(), classic)
		vr, _ := verifier(t, reg.Host, PolicyEnforce, nil, k1.Public, kr.Public)
		expectVerified(t, vr, base+"rsa:1", dr, kr.Public, LayoutTag)
		dr2 := push(t, reg, imgs[2], "demo/rsa2:1")
		sign(t, cos, kr.Private, base+"rsa2@"+dr2.String(), opts)
		expectVerified(t, vr, base+"rsa2:1", dr2, kr.Public, LayoutBundleTag)
	})
	cos.CheckOffline(t)
}

// TestCosignTLSRegistryWithAuth signs on a registry with TLS from its own CA
// and htpasswd, and verifies through hosts carrying that CA and account.
func TestCosignTLSRegistryWithAuth(t *testing.T) {
	reg := testbed.StartRegistry(t, testbed.RegistryOptions{TLS: true, User: "signer", Password: "s3cret"})
	cos := testbed.NewCosign(t)
	k := cos.GenerateKeyPair(t, "k")
	imgs := images(t)
	d := push(t, reg, imgs[0], "demo/tls:1")
	sign(t, cos, k.Private, reg.Host+"/demo/tls@"+d.String(), testbed.SignOptionsFor(reg))
	cos.CheckOffline(t)

	hosts := func(string) docker.RegistryHosts {
		return config.ConfigureHosts(quietContext(context.Background()), config.HostOptions{
			DefaultTLS:  &tls.Config{RootCAs: reg.CA.Pool(), MinVersion: tls.VersionTLS12},
			Credentials: func(string) (string, string, error) { return reg.User, reg.Password, nil },
		})
	}
	v, rule := verifier(t, reg.Host, PolicyEnforce, hosts, k.Public)
	expectVerified(t, v, reg.Host+"/demo/tls:1", d, k.Public, LayoutBundleTag)

	anonymous, _ := verifier(t, reg.Host, PolicyEnforce, func(string) docker.RegistryHosts {
		return config.ConfigureHosts(quietContext(context.Background()), config.HostOptions{
			DefaultTLS: &tls.Config{RootCAs: reg.CA.Pool(), MinVersion: tls.VersionTLS12},
		})
	}, k.Public)
	expectRejected(t, anonymous, reg.Host+"/demo/tls:1", d, rule, "failed to fetch signatures")
}

// TestCosignReferrersAPI signs on a registry with the referrers API (the
// in-memory one of the unit tests), where cosign v3 writes a plain referrer
// and no tag.
func TestCosignReferrersAPI(t *testing.T) {
	fake := newFakeRegistry(t, true)
	cos := testbed.NewCosign(t)
	k := cos.GenerateKeyPair(t, "k")
	imgs := images(t)
	d, err := imgs[0].Push(context.Background(), fake.Host, "demo/ref:1")
	if err != nil {
		t.Fatal(err)
	}
	sign(t, cos, k.Private, fake.Host+"/demo/ref@"+d.String(), testbed.SignOptions{AllowHTTP: true})
	cos.CheckOffline(t)
	fake.mu.Lock()
	_, tagged := fake.tags["demo/ref:"+sigTag(d)]
	n := len(fake.referrers["demo/ref@"+d.String()])
	fake.mu.Unlock()
	if tagged || n != 1 {
		t.Fatalf("cosign wrote %d referrers and tag fallback %v; expected one referrer and no tag", n, tagged)
	}
	v, _ := verifier(t, fake.Host, PolicyEnforce, nil, k.Public)
	expectVerified(t, v, fake.Host+"/demo/ref:1", d, k.Public, LayoutBundleReferrer)
}
