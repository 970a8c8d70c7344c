package driver

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/nomad-containerd/nomad-driver-containerd/image"
	"github.com/nomad-containerd/nomad-driver-containerd/image/trust"
)

// ImageConfig is the validated registry and verification part of the
// plugin config.
type ImageConfig struct {
	AuthConfig      string // docker config.json
	AuthHelper      string // docker-credential-<helper>
	ActivityTimeout time.Duration
	Trust           *trust.Config
	GC              image.GCConfig
}

// rawImageOptions is the part of the plugin config that parseImageConfig
// reads.
type rawImageOptions struct {
	Auth                rawAuthConfig
	PullActivityTimeout string
	Trust               rawTrust
	GC                  rawGC
}

// parseImageConfig validates auth, pull_activity_timeout and trust.
func parseImageConfig(raw rawImageOptions) (ImageConfig, error) {
	ic := ImageConfig{AuthConfig: raw.Auth.Config, AuthHelper: raw.Auth.Helper}
	if ic.AuthConfig != "" && !filepath.IsAbs(ic.AuthConfig) {
		return ic, fmt.Errorf("auth.config: %q must be an absolute path to a docker config.json", ic.AuthConfig)
	}
	if strings.ContainsAny(ic.AuthHelper, "/ \t") {
		return ic, fmt.Errorf("auth.helper: %q must be a helper name such as %q (the binary docker-credential-<name> on PATH)", ic.AuthHelper, "ecr-login")
	}
	var err error
	if ic.ActivityTimeout, err = positiveDuration("pull_activity_timeout", raw.PullActivityTimeout); err != nil {
		return ic, err
	}
	rules := make([]trust.RawRule, 0, len(raw.Trust.Rules))
	for _, r := range raw.Trust.Rules {
		ids := make([]trust.RawIdentity, 0, len(r.Identities))
		for _, id := range r.Identities {
			ids = append(ids, trust.RawIdentity{Issuer: id.Issuer, IssuerRegexp: id.IssuerRegexp, Subject: id.Subject, SubjectRegexp: id.SubjectRegexp})
		}
		rules = append(rules, trust.RawRule{Prefix: r.Prefix, PublicKeys: r.PublicKeys, Identities: ids, TrustedRoot: r.TrustedRoot, Threshold: r.Threshold, Policy: r.Policy})
	}
	if ic.Trust, err = trust.ParseConfig(raw.Trust.DefaultPolicy, rules); err != nil {
		return ic, err
	}
	// without a gc block the schema's defaults do not apply: image GC is on
	ic.GC = image.GCConfig{Enabled: raw.GC.Image == nil || *raw.GC.Image, Delay: image.DefaultGCDelay}
	if raw.GC.ImageDelay != "" {
		if ic.GC.Delay, err = positiveDuration("gc.image_delay", raw.GC.ImageDelay); err != nil {
			return ic, err
		}
	}
	if ic.GC.Disk, err = parseDiskPressure(raw.GC, ic.GC.Enabled); err != nil {
		return ic, err
	}
	return ic, nil
}

// parseDiskPressure validates the disk watermarks of the gc block.
func parseDiskPressure(raw rawGC, imageGC bool) (image.DiskPressure, error) {
	dp, err := image.ParseDiskPressure(raw.DiskHigh, raw.DiskLow)
	if err != nil {
		return dp, err
	}
	if dp.High > 0 && !imageGC {
		return dp, fmt.Errorf("gc.disk_high: %q needs gc.image = true: with image GC off no image is ever removed", raw.DiskHigh)
	}
	if raw.DiskCheckInterval != "" {
		if dp.Interval, err = positiveDuration("gc.disk_check_interval", raw.DiskCheckInterval); err != nil {
			return dp, err
		}
	}
	for _, p := range raw.DiskPaths {
		if !filepath.IsAbs(p) {
			return dp, fmt.Errorf("gc.disk_paths: %q must be an absolute path, such as containerd's root %q", p, "/var/lib/containerd")
		}
	}
	dp.Paths = raw.DiskPaths
	return dp, nil
}

// defaultContainerGrace is gc.container_grace's default.
const defaultContainerGrace = 5 * time.Minute

// ContainerGC is the dangling container part of the gc block.
type ContainerGC struct {
	Enabled bool          // gc.container (default true)
	Grace   time.Duration // gc.container_grace (default 5m)
}

// parseContainerGC validates gc.container and gc.container_grace; without
// a gc block the schema's defaults do not apply, so they are set here too.
func parseContainerGC(raw rawGC) (ContainerGC, error) {
	gc := ContainerGC{Enabled: raw.Container == nil || *raw.Container, Grace: defaultContainerGrace}
	if raw.ContainerGrace != "" {
		var err error
		if gc.Grace, err = positiveDuration("gc.container_grace", raw.ContainerGrace); err != nil {
			return gc, err
		}
	}
	return gc, nil
}

// taskAuth is the task's registry credentials; nil when it gives none.
func taskAuth(raw rawTaskAuth) *image.Auth {
	if raw.Username == "" && raw.Password == "" {
		return nil
	}
	return &image.Auth{Username: raw.Username, Password: raw.Password, ServerAddress: raw.ServerAddress}
}

// checkTrustPrefix applies rkt's trust_prefix: it can only make the policy
// stricter, demanding that the image falls under a plugin trust rule for
// that prefix whose policy is enforce.
func checkTrustPrefix(tc *trust.Config, prefix, ref string) error {
	if prefix == "" {
		return nil
	}
	if !strings.HasPrefix(ref, prefix) {
		return fmt.Errorf("trust_prefix: image %q does not start with %q", ref, prefix)
	}
	rule, ok := tc.Match(ref)
	if !ok || rule.Policy != trust.PolicyEnforce {
		return fmt.Errorf("trust_prefix: %q needs a plugin trust rule for it with policy \"enforce\"; image %q has rule %q with policy %q", prefix, ref, rule.Name(), rule.Policy)
	}
	return nil
}
