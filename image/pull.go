package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/log"
	"github.com/containerd/platforms"
	"github.com/hashicorp/go-hclog"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
)

// pullJob is what one pull needs to know.
type pullJob struct {
	ref, host string
	pin       digest.Digest
	auth      *Auth // task-level credentials
	softFail  bool
	tryLocal  bool
	stall     time.Duration // activity timeout; <= 0 = none
	verify    VerifyFunc
	platform  platforms.MatchComparer
	platforms []ocispec.Platform // platform and those it accepts, best first
}

// pull fetches and unpacks job.ref inside a lease that is deleted when it
// ends (and whose content is collected at once when it failed). With
// job.tryLocal, an image whose content is in the store but is not unpacked
// for the snapshotter is unpacked without a registry round trip first.
// publish, when not nil, gets the pull's progress.
func (m *Manager) pull(ctx context.Context, logger hclog.Logger, job pullJob, publish func(Progress)) (_ client.Image, retErr error) {
	ctx = namespaces.WithNamespace(ctx, m.namespace)
	ctx = log.WithLogger(ctx, quietLogger())

	expiry := leaseGrace
	if deadline, ok := ctx.Deadline(); ok {
		expiry += time.Until(deadline)
	}
	ls := m.client.LeasesService()
	lease, err := ls.Create(ctx, leases.WithRandomID(), leases.WithExpiration(expiry))
	if err != nil {
		return nil, fmt.Errorf("failed to create lease: %w", err)
	}
	ctx = leases.WithLease(ctx, lease.ID)
	defer func() {
		dctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), m.namespace), cleanupTimeout)
		defer cancel()
		var opts []leases.DeleteOpt
		if retErr != nil {
			// Collect what the failed pull leaves (partial ingests,
			// snapshots) now rather than at some later GC.
			opts = append(opts, leases.SynchronousDelete)
		}
		if err := ls.Delete(dctx, lease, opts...); err != nil {
			logger.Warn("failed to delete pull lease", "lease", lease.ID, "error", err)
		}
	}()

	if job.tryLocal {
		if img := m.unpackLocal(ctx, logger, job.ref, job.pin, job.platform); img != nil {
			if err := verify(ctx, job.verify, job.ref, img.Target().Digest); err != nil {
				return nil, err
			}
			return img, nil
		}
	}

	auth, err := m.credentials(ctx, logger, job)
	if err != nil {
		return nil, err
	}

	tracker := newPullTracker(m.manifestLayers(ctx))
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := make(chan struct{})
	monitored := make(chan struct{})
	go func() {
		defer close(monitored)
		tracker.monitor(stop, m.cfg.ProgressInterval, job.stall, publish, cancel)
	}()

	start := time.Now()
	logger.Info("pulling image", "snapshotter", m.cfg.Snapshotter)
	img, err := m.pullVerified(pctx, logger, job, auth, tracker)
	close(stop)
	<-monitored
	if err != nil {
		if cause := context.Cause(pctx); errors.Is(cause, ErrPullStalled) {
			err = cause
		}
		if !errors.Is(err, ErrNotVerified) {
			err = redact(describePullError(err, job.pin), auth)
			logger.Warn("image pull failed", "error", err, "duration", time.Since(start))
		}
		return nil, err
	}
	tracker.complete()
	p := tracker.snapshot()
	if publish != nil && p.Layers > 0 {
		publish(p)
	}
	logger.Info("pulled image", "digest", img.Target().Digest, "bytes", p.Total, "layers", p.Layers, "duration", time.Since(start))
	return img, nil
}

// unpackLocal unpacks an image whose content is already in the store; it
// returns nil when that is not possible and a pull is needed.
func (m *Manager) unpackLocal(ctx context.Context, logger hclog.Logger, ref string, pin digest.Digest, pm platforms.MatchComparer) client.Image {
	rec, err := m.client.ImageService().Get(ctx, ref)
	if err != nil {
		return nil
	}
	img := client.NewImageWithPlatform(m.client, rec, pm)
	if pin != "" && img.Target().Digest != pin {
		return nil
	}
	if err := img.Unpack(ctx, m.cfg.Snapshotter); err != nil {
		logger.Debug("cannot unpack from local content, pulling", "error", err)
		return nil
	}
	logger.Info("unpacked image from local content", "digest", img.Target().Digest, "snapshotter", m.cfg.Snapshotter)
	return img
}

// quietLogger silences containerd's own client-side logging during pulls:
// it goes to the process's stderr, outside hclog, and may carry registry
// URLs with account names.
func quietLogger() *log.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	l.SetLevel(logrus.PanicLevel)
	return logrus.NewEntry(l)
}
