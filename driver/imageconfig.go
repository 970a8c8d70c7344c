package driver

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/nomad/plugins/shared/hclspec"

	"github.com/nomad-containerd/nomad-driver-containerd/image"
	"github.com/nomad-containerd/nomad-driver-containerd/image/trust"
)

// Plugin config blocks for registries and verification.
var (
	authConfigSpec = hclspec.NewBlock("auth", false, hclspec.NewObject(map[string]*hclspec.Spec{
		"config": hclspec.NewAttr("config", "string", false),
		"helper": hclspec.NewAttr("helper", "string", false),
	}))
	trustSpec = hclspec.NewBlock("trust", false, hclspec.NewObject(map[string]*hclspec.Spec{
		"default_policy": hclspec.NewDefault(hclspec.NewAttr("default_policy", "string", false), hclspec.NewLiteral(`"off"`)),
		"rule": hclspec.NewBlockList("rule", hclspec.NewObject(map[string]*hclspec.Spec{
			"prefix":      hclspec.NewAttr("prefix", "string", true),
			"public_keys": hclspec.NewAttr("public_keys", "list(string)", false),
			"policy":      hclspec.NewDefault(hclspec.NewAttr("policy", "string", false), hclspec.NewLiteral(`"enforce"`)),
		})),
	}))
	gcSpec = hclspec.NewBlock("gc", false, hclspec.NewObject(map[string]*hclspec.Spec{
		"image":       hclspec.NewDefault(hclspec.NewAttr("image", "bool", false), hclspec.NewLiteral("true")),
		"image_delay": hclspec.NewDefault(hclspec.NewAttr("image_delay", "string", false), hclspec.NewLiteral(`"3m"`)),
		"container":   hclspec.NewDefault(hclspec.NewAttr("container", "bool", false), hclspec.NewLiteral("true")),
		"container_grace": hclspec.NewDefault(hclspec.NewAttr("container_grace", "string", false),
			hclspec.NewLiteral(`"5m"`)),
	}))
	// taskAuthSpec is the docker driver's task auth block.
	taskAuthSpec = hclspec.NewBlock("auth", false, hclspec.NewObject(map[string]*hclspec.Spec{
		"username":       hclspec.NewAttr("username", "string", false),
		"password":       hclspec.NewAttr("password", "string", false),
		"email":          hclspec.NewAttr("email", "string", false),
		"server_address": hclspec.NewAttr("server_address", "string", false),
	}))
)

type rawAuthConfig struct {
	Config string `codec:"config"`
	Helper string `codec:"helper"`
}

type rawTrust struct {
	DefaultPolicy string         `codec:"default_policy"`
	Rules         []rawTrustRule `codec:"rule"`
}

type rawTrustRule struct {
	Prefix     string   `codec:"prefix"`
	PublicKeys []string `codec:"public_keys"`
	Policy     string   `codec:"policy"`
}

type rawGC struct {
	Image          *bool  `codec:"image"`
	ImageDelay     string `codec:"image_delay"`
	Container      *bool  `codec:"container"`
	ContainerGrace string `codec:"container_grace"`
}

type rawTaskAuth struct {
	Username      string `codec:"username"`
	Password      string `codec:"password"`
	Email         string `codec:"email"`
	ServerAddress string `codec:"server_address"`
}

// ImageConfig is the validated registry and verification part of the
// plugin config.
type ImageConfig struct {
	AuthConfig      string // docker config.json
	AuthHelper      string // docker-credential-<helper>
	ActivityTimeout time.Duration
	Trust           *trust.Config
	GC              image.GCConfig
}

// parseImageConfig validates auth, pull_activity_timeout and trust.
func parseImageConfig(raw rawConfig) (ImageConfig, error) {
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
		rules = append(rules, trust.RawRule{Prefix: r.Prefix, PublicKeys: r.PublicKeys, Policy: r.Policy})
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
	return ic, nil
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
