package driver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/opencontainers/go-digest"

	"github.com/nomad-containerd/nomad-driver-containerd/image"
	"github.com/nomad-containerd/nomad-driver-containerd/image/trust"
)

// pullImage makes the image present locally (local first unless
// force_pull), bounded by image_pull_timeout and the plugin's
// pull_activity_timeout, verifies its signatures under the plugin's trust
// policy before the image is used, and records its digest.
func (d *Driver) pullImage(st *state, cfg *drivers.TaskConfig, tc *TaskConfig) (_ client.Image, _ image.Info, err error) {
	ref, err := image.Normalize(tc.Image)
	if err != nil {
		return nil, image.Info{}, fmt.Errorf("image: %w", err)
	}
	if err := checkTrustPrefix(st.config.Images.Trust, tc.TrustPrefix, ref); err != nil {
		return nil, image.Info{}, err
	}
	timeout := tc.ImagePullTimeout
	if timeout == 0 {
		timeout = st.config.ImagePullTimeout
	}
	trustRef := ref // trust rules judge the name the job gave
	archive, err := openLoad(cfg, tc.Load)
	if err != nil {
		return nil, image.Info{}, err
	}
	defer archive.close()
	if archive != nil {
		// a loaded archive is stored under a name of this allocation: no
		// task can change what another task's reference resolves to
		if ref, err = loadedName(cfg.AllocID, ref); err != nil {
			return nil, image.Info{}, fmt.Errorf("image: %w", err)
		}
	}
	st.gc.Use(ref) // a removal pending for this image is off, until the start ends
	defer func() {
		if err != nil {
			st.gc.Failed(ref)
		}
	}()
	var checked verifiedDigest
	var verify image.VerifyFunc
	if rule, _ := st.config.Images.Trust.Match(trustRef); rule.Policy != trust.PolicyOff {
		// Under off there is nothing to check: the pull need not resolve
		// the reference before containerd fetches it.
		verify = func(ctx context.Context, _ string, dgst digest.Digest) error {
			if err := d.verifyImage(ctx, st, cfg, trustRef, dgst); err != nil {
				return err
			}
			checked.set(dgst)
			return nil
		}
	}
	// Every step of getting the image, the local lookup and the trust
	// check included, ends with the pull timeout: a registry that accepts
	// connections and never answers fails the start rather than hanging it.
	// A task that joins another's pull waits at most this long and leaves
	// that pull running for the others.
	ctx, cancel := context.WithTimeout(d.ctx, timeout)
	defer cancel()
	img, err := st.images.Ensure(ctx, image.Request{
		Ref:          ref,
		ForcePull:    tc.ForcePull,
		Auth:         tc.Auth,
		AuthSoftFail: tc.AuthSoftFail,
		Timeout:      timeout,
		Progress:     func(p image.Progress) { d.emit(cfg, progressMessage(ref, p), nil) },
		Verify:       verify,
		VerifyKey:    "trust",
		Platform:     tc.Platform,
		Archive:      archive.path(),
	})
	if err != nil {
		return nil, image.Info{}, structs.NewRecoverableError(fmt.Errorf("failed to get image %q: %w", tc.Image, err), image.IsRecoverable(err))
	}
	if verify != nil {
		if d.afterVerify != nil {
			d.afterVerify(cfg)
		}
		if err := d.checkVerified(st, cfg, tc, trustRef, ref, img, &checked, timeout); err != nil {
			// an interrupted check may pass next time; a refusal will not
			return nil, image.Info{}, structs.NewRecoverableError(err, errors.Is(err, context.DeadlineExceeded))
		}
	}
	dctx, dcancel := context.WithTimeout(d.ctx, callTimeout)
	defer dcancel()
	info, err := st.images.Describe(dctx, img, tc.Platform)
	if err != nil {
		return nil, image.Info{}, fmt.Errorf("failed to read image %q: %w", ref, err)
	}
	d.emit(cfg, fmt.Sprintf("Using image %s@%s", info.Ref, info.Digest), map[string]string{"image": info.Ref, "image_digest": info.Digest})
	return img, info, nil
}

// checkVerified makes sure that the image about to run is the one the
// trust policy verified. A task that joined a pull another task started
// and verified has it checked (and reported) for itself. Then the digest
// the image store holds under the name, and the one about to be used, must
// both be the verified digest: a concurrent writer of the name cannot slip
// another image into a verified start.
func (d *Driver) checkVerified(st *state, cfg *drivers.TaskConfig, tc *TaskConfig, trustRef, ref string, img client.Image, checked *verifiedDigest, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(d.ctx, timeout)
	defer cancel()
	want, ok := checked.get()
	if !ok {
		want = img.Target().Digest
		if err := d.verifyImage(ctx, st, cfg, trustRef, want); err != nil {
			return fmt.Errorf("failed to get image %q: %w", tc.Image, err)
		}
	}
	stored, err := st.images.StoredDigest(ctx, ref)
	if err != nil {
		return fmt.Errorf("failed to get image %q: %w", tc.Image, err)
	}
	if got := img.Target().Digest; stored != want || got != want {
		return fmt.Errorf("image %q: the image store holds %s under %q and the start would use %s, not the verified %s: refused", tc.Image, stored, ref, got, want)
	}
	return nil
}

// verifiedDigest is the digest the trust policy verified for this start.
type verifiedDigest struct {
	mu   sync.Mutex
	dgst digest.Digest
}

func (v *verifiedDigest) set(d digest.Digest) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.dgst = d
}

func (v *verifiedDigest) get() (digest.Digest, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.dgst, v.dgst != ""
}

// verifyImage checks ref's digest under the trust policy and reports the
// outcome as a task event; only an enforce failure is an error.
func (d *Driver) verifyImage(ctx context.Context, st *state, cfg *drivers.TaskConfig, ref string, dgst digest.Digest) error {
	res, err := st.verifier.Verify(ctx, ref, dgst)
	if err != nil {
		return err
	}
	ann := map[string]string{"image": ref, "image_digest": dgst.String(), "trust_rule": res.Rule, "trust_policy": string(res.Policy)}
	switch {
	case res.Verified:
		ann["trust_key"] = res.KeyPath
		d.emit(cfg, fmt.Sprintf("Image signature verified: %s@%s signed by %s (rule %s)", ref, dgst, res.KeyPath, res.Rule), ann)
	case res.Warning != "":
		d.emit(cfg, fmt.Sprintf("Image signature not verified, running anyway (policy warn): %s", res.Warning), ann)
	}
	return nil
}

// progressMessage is the task event of a pull in progress.
func progressMessage(ref string, p image.Progress) string {
	return fmt.Sprintf("Pulling image %s: %.1f of %.1f MiB, %d of %d layers", ref, float64(p.Done)/mib, float64(p.Total)/mib, p.LayersDone, p.Layers)
}

// imageHold is a start's claim on its image against image GC: from Use in
// pullImage until its container exists (created) or the start fails (fail,
// which releases the image).
type imageHold struct {
	gc      *image.GC
	ref     string
	holding bool
}

// created ends the claim: the container holds the image now.
func (h *imageHold) created() {
	if h.holding {
		h.holding = false
		h.gc.Started(h.ref)
	}
}

// fail ends the start: the image is released.
func (h *imageHold) fail() {
	if h.holding {
		h.holding = false
		h.gc.Failed(h.ref)
		return
	}
	h.gc.Release(h.ref)
}
