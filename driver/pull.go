package driver

import (
	"context"
	"errors"
	"fmt"

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
	req := image.Request{
		Ref:          ref,
		Normalized:   true, // by Normalize or loadedName
		ForcePull:    tc.ForcePull,
		Auth:         tc.Auth,
		AuthSoftFail: tc.AuthSoftFail,
		// Every step of getting the image, the local lookup and the trust
		// check included, ends with the pull timeout: a registry that
		// accepts connections and never answers fails the start rather
		// than hanging it. A task that joins another's pull waits at most
		// this long and leaves that pull running for the others.
		Timeout:  timeout,
		Progress: func(p image.Progress) { d.emit(cfg, progressMessage(ref, p), nil) },
		Platform: tc.Platform,
		Archive:  archive.path(),
	}
	if rule, _ := st.config.Images.Trust.Match(trustRef); rule.Policy != trust.PolicyOff {
		// Under off there is nothing to check: the pull need not resolve
		// the reference before containerd fetches it.
		req.Verify = func(ctx context.Context, _ string, dgst digest.Digest) error {
			return d.verifyImage(ctx, st, cfg, trustRef, dgst)
		}
		req.VerifyKey = "trust"
		if d.afterVerify != nil {
			req.AfterVerify = func() { d.afterVerify(cfg) }
		}
	}
	res, err := st.images.Ensure(d.ctx, req)
	switch {
	case errors.Is(err, image.ErrStoreChanged):
		return nil, image.Info{}, structs.NewRecoverableError(fmt.Errorf("image %q: %w", tc.Image, err), false)
	case errors.Is(err, image.ErrConfigUnreadable):
		return nil, image.Info{}, err
	case err != nil:
		return nil, image.Info{}, structs.NewRecoverableError(fmt.Errorf("failed to get image %q: %w", tc.Image, err), image.IsRecoverable(err))
	}
	info := res.Info
	st.gc.CheckDisk() // a pull may have filled the disk; this start holds its own image
	d.emit(cfg, fmt.Sprintf("Using image %s@%s", info.Ref, info.Digest), map[string]string{"image": info.Ref, "image_digest": info.Digest})
	return res.Image, info, nil
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
		if res.KeyPath != "" {
			ann["trust_key"] = res.KeyPath
		} else {
			ann["trust_identity"] = res.Identity
		}
		d.emit(cfg, fmt.Sprintf("Image signature verified: %s@%s signed by %s (rule %s)", ref, dgst, res.Signer(), res.Rule), ann)
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
