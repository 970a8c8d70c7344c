//go:build integration

package trust

import (
	"testing"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// TestCosignV2Signatures verifies what a cosign v2 build writes (the
// classic sha256-<hex>.sig tag), with a key pair cosign v2 generated.
func TestCosignV2Signatures(t *testing.T) {
	reg := testbed.StartRegistry(t)
	cos := testbed.NewCosignV2(t)
	k1, k2 := cos.GenerateKeyPair(t, "v2a"), cos.GenerateKeyPair(t, "v2b")
	imgs := images(t)
	d := push(t, reg, imgs[0], "demo/v2:1")
	other := push(t, reg, imgs[1], "demo/v2:2")
	sign(t, cos, k1.Private, reg.Host+"/demo/v2@"+d.String(), testbed.SignOptionsFor(reg))
	cos.CheckOffline(t)

	enforce1, rule := verifier(t, reg.Host, PolicyEnforce, nil, k1.Public)
	expectVerified(t, enforce1, reg.Host+"/demo/v2:1", d, k1.Public, LayoutTag)
	expectRejected(t, enforce1, reg.Host+"/demo/v2:2", other, rule, "no cosign signature found")
	enforce2, _ := verifier(t, reg.Host, PolicyEnforce, nil, k2.Public)
	expectRejected(t, enforce2, reg.Host+"/demo/v2:1", d, rule, "not signed by any trusted key")
}
