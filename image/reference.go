package image

import (
	"errors"
	"fmt"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// ErrInvalidReference is wrapped by every error Normalize returns.
var ErrInvalidReference = errors.New("invalid image reference")

// referenceForm describes what Normalize accepts; it ends every error.
const referenceForm = "expected [registry[:port]/]repository[:tag][@sha256:<64 hex digits>] with a lowercase repository, e.g. \"busybox:1.36\" or \"registry.example.com:5000/team/app@sha256:...\""

// Normalize turns a reference as users write it ("busybox",
// "library/busybox:1", "host:5000/x/y@sha256:...") into its fully qualified
// form ("docker.io/library/busybox:latest", ...). A reference that carries
// both a tag and a digest keeps only the digest, which is what is pulled.
func Normalize(ref string) (string, error) {
	if strings.TrimSpace(ref) == "" {
		return "", fmt.Errorf("%w: the value is empty; %s", ErrInvalidReference, referenceForm)
	}
	if ref != strings.TrimSpace(ref) {
		return "", fmt.Errorf("%w %q: leading or trailing whitespace; %s", ErrInvalidReference, ref, referenceForm)
	}
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return "", fmt.Errorf("%w %q: %v; %s", ErrInvalidReference, ref, err, referenceForm)
	}
	return named.String(), nil
}

// splitRef returns the registry host of a normalized reference and its
// pinned digest ("" when the reference is a tag).
func splitRef(normalized string) (host string, pin digest.Digest, err error) {
	named, err := reference.ParseNormalizedNamed(normalized)
	if err != nil {
		return "", "", fmt.Errorf("%w %q: %v; %s", ErrInvalidReference, normalized, err, referenceForm)
	}
	if d, ok := named.(reference.Digested); ok {
		pin = d.Digest()
	}
	return reference.Domain(named), pin, nil
}
