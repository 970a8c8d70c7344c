package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	remoteerrors "github.com/containerd/containerd/v2/core/remotes/errors"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
)

func status(code int) error {
	return remoteerrors.ErrUnexpectedStatus{StatusCode: code, Status: fmt.Sprintf("%d status", code), RequestMethod: "HEAD"}
}

func TestIsRecoverable(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("failed to pull image %q: %w", "x", err) }
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &net.AddrError{Err: "connect: connection refused"}}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"invalid reference", wrap(fmt.Errorf("%w %q", ErrInvalidReference, "A")), false},
		{"digest mismatch", wrap(fmt.Errorf("%w: x", ErrDigestMismatch)), false},
		{"authorization failed", wrap(fmt.Errorf("pull access denied: %w", docker.ErrInvalidAuthorization)), false},
		{"not found", wrap(fmt.Errorf("ref: %w", errdefs.ErrNotFound)), false},
		{"unsupported media type", wrap(errdefs.ErrNotImplemented), false},
		{"commit precondition", wrap(fmt.Errorf("unexpected commit digest: %w", errdefs.ErrFailedPrecondition)), false},
		{"status 401", wrap(status(401)), false},
		{"status 403", wrap(status(403)), false},
		{"status 404", wrap(status(404)), false},
		{"status 400", wrap(status(400)), false},
		{"status 408", wrap(status(408)), true},
		{"status 429", wrap(status(429)), true},
		{"status 500", wrap(status(500)), true},
		{"status 503 joined with registry errors", wrap(errors.Join(status(503), docker.Errors{docker.ErrorCodeUnavailable})), true},
		{"caller cancelled", wrap(context.Canceled), false},
		{"timeout", wrap(context.DeadlineExceeded), true},
		{"connection refused", wrap(fmt.Errorf("failed to do request: %w", &url.Error{Op: "Head", URL: "http://h/v2/", Err: refused})), true},
		{"dns failure", wrap(&net.DNSError{Err: "no such host", Name: "registry.invalid", IsNotFound: true}), true},
		{"reset errno", wrap(syscall.ECONNRESET), true},
		{"unexpected eof", wrap(io.ErrUnexpectedEOF), true},
		{"containerd unavailable", wrap(fmt.Errorf("connection error: %w", errdefs.ErrUnavailable)), true},
		{"stalled", wrap(fmt.Errorf("%w: no data received from the registry for 2m0s", ErrPullStalled)), true},
		{"no space", wrap(fmt.Errorf("%w: write x: no space left on device", ErrNoSpace)), true},
		{"stalled, cancelled underneath", wrap(fmt.Errorf("%w: %w", ErrPullStalled, context.Canceled)), true},
		{"credential lookup", wrap(fmt.Errorf("%w for r: helper exited", ErrCredentialLookup)), false},
		{"credential lookup with a network error", wrap(fmt.Errorf("%w: %w", ErrCredentialLookup, syscall.ECONNREFUSED)), false},
		{"unknown", errors.New("something else"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsRecoverable(tc.err); got != tc.want {
				t.Fatalf("IsRecoverable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestIsRecoverableRealDial(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = net.Dial("tcp", addr)
	if err == nil {
		t.Fatalf("dial %s succeeded after close", addr)
	}
	if !IsRecoverable(fmt.Errorf("failed to do request: %w", err)) {
		t.Fatalf("IsRecoverable(%v) = false, want true", err)
	}
}

func TestDescribePullError(t *testing.T) {
	const ref = "127.0.0.1:5000/app@" + testDigest
	mismatch := fmt.Errorf("failed commit on ref: unexpected commit digest sha256:aa, expected %s: %w", testDigest, errdefs.ErrFailedPrecondition)
	err := describePullError(mismatch, testDigest)
	if !errors.Is(err, ErrDigestMismatch) || !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("content mismatch: %v does not wrap ErrDigestMismatch and the cause", err)
	}
	if !strings.Contains(err.Error(), "does not match its digest") {
		t.Errorf("content mismatch message %q is not clear", err)
	}

	err = describePullError(fmt.Errorf("%s: %w", ref, errdefs.ErrNotFound), testDigest)
	if !errdefs.IsNotFound(err) || IsRecoverable(err) {
		t.Fatalf("pin not found: %v lost its class", err)
	}
	for _, want := range []string{"pinned digest " + testDigest, "no manifest with that digest"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("pin not found message %q does not contain %q", err, want)
		}
	}

	full := errors.New(`failed to extract layer (sha256:aa) to overlayfs as "extract-1": write /var/lib/containerd/x: no space left on device`)
	err = describePullError(full, "")
	if !errors.Is(err, ErrNoSpace) || !IsRecoverable(err) {
		t.Fatalf("no space: %v does not wrap ErrNoSpace or is not recoverable", err)
	}
	for _, want := range []string{"containerd's root filesystem is full", "no space left on device"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("no space message %q does not contain %q", err, want)
		}
	}

	plain := fmt.Errorf("%s: %w", "docker.io/library/x:1", errdefs.ErrNotFound)
	if got := describePullError(plain, ""); got != plain {
		t.Errorf("tag not found was rewritten: %v", got)
	}
}

func TestRedact(t *testing.T) {
	auth := &Auth{Username: "alice-user", Password: "s3cr3t/p@ss", ServerAddress: "r.example.com"}
	cause := fmt.Errorf("token fetch GET https://auth/?account=alice-user&p=s3cr3t%%2Fp%%40ss failed for s3cr3t/p@ss: %w", docker.ErrInvalidAuthorization)
	err := redact(cause, auth)
	msg := err.Error()
	for _, secret := range []string{"alice-user", "s3cr3t", "p@ss", "p%40ss"} {
		if strings.Contains(msg, secret) {
			t.Errorf("redacted message %q still contains %q", msg, secret)
		}
	}
	if !strings.Contains(msg, "[redacted]") {
		t.Errorf("message %q has no redaction marker", msg)
	}
	if !errors.Is(err, docker.ErrInvalidAuthorization) {
		t.Errorf("redaction lost the error chain: %v", err)
	}

	clean := errors.New("nothing to hide")
	if got := redact(clean, auth); got != clean {
		t.Errorf("redact changed an error without credentials: %v", got)
	}
	if got := redact(cause, nil); got != cause {
		t.Errorf("redact without credentials changed the error")
	}
	short := redact(errors.New("failed for al"), &Auth{Username: "al", Password: "longpassword"})
	if short.Error() != "failed for al" {
		t.Errorf("short user name garbled the message: %q", short)
	}
}

// overTransferAPI is err as client.Transfer returns it when the daemon's
// transfer service failed with err: a gRPC status and back.
func overTransferAPI(err error) error {
	return reviveTransferError(errgrpc.ToNative(errgrpc.ToGRPC(err)))
}

func TestRevivedTransferErrors(t *testing.T) {
	dial := func() error {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		_, err = http.Head("http://" + addr + "/v2/")
		if err == nil {
			t.Fatalf("request to closed %s succeeded", addr)
		}
		return fmt.Errorf("failed to resolve image: failed to do request: %w", err)
	}
	statusErr := func(code int) error {
		return fmt.Errorf("failed to resolve image: %w", remoteerrors.ErrUnexpectedStatus{
			Status: fmt.Sprintf("%d %s", code, http.StatusText(code)), StatusCode: code, RequestMethod: "HEAD", RequestURL: "http://r/v2/app/manifests/1"})
	}
	cases := []struct {
		name        string
		err         error
		recoverable bool
		is          error
	}{
		{"no credentials", fmt.Errorf("failed to resolve image: pull access denied, repository does not exist or may require authorization: %w", fmt.Errorf("%w: no basic auth credentials", docker.ErrInvalidAuthorization)), false, docker.ErrInvalidAuthorization},
		{"status 401", statusErr(401), false, nil},
		{"status 404", statusErr(404), false, nil},
		{"status 429", statusErr(429), true, nil},
		{"status 502", statusErr(502), true, nil},
		{"connection refused", dial(), true, syscall.ECONNREFUSED},
		{"dns failure", fmt.Errorf("failed to do request: %w", &url.Error{Op: "Head", URL: "https://registry.invalid/v2/", Err: &net.DNSError{Err: "no such host", Name: "registry.invalid", IsNotFound: true}}), true, nil},
		{"short read", fmt.Errorf("failed to copy: %w", fmt.Errorf("short read: expected 10 bytes but got 5: %w", io.ErrUnexpectedEOF)), true, io.ErrUnexpectedEOF},
		{"not found", fmt.Errorf("failed to resolve image: r/app:1: %w", errdefs.ErrNotFound), false, errdefs.ErrNotFound},
		{"cancelled", context.Canceled, false, context.Canceled},
		{"deadline", context.DeadlineExceeded, true, context.DeadlineExceeded},
		{"commit mismatch", fmt.Errorf("failed commit on ref %q: unexpected commit digest sha256:aa, expected %s: %w", "layer-x", testDigest, errdefs.ErrFailedPrecondition), false, errdefs.ErrFailedPrecondition},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := overTransferAPI(tc.err)
			if got.Error() != errgrpc.ToNative(errgrpc.ToGRPC(tc.err)).Error() {
				t.Errorf("message changed: %q", got)
			}
			if IsRecoverable(got) != tc.recoverable || IsRecoverable(got) != IsRecoverable(tc.err) {
				t.Errorf("IsRecoverable(%v) = %v, want %v as before the API", got, IsRecoverable(got), tc.recoverable)
			}
			if tc.is != nil && !errors.Is(got, tc.is) {
				t.Errorf("%v is not %v", got, tc.is)
			}
		})
	}
	// The classes that describePullError tells apart hold too.
	if err := describePullError(overTransferAPI(cases[len(cases)-1].err), ""); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("content mismatch over the API: %v", err)
	}
	full := errors.New(`failed to extract layer (sha256:aa) to overlayfs as "extract-1": write /var/lib/containerd/x: no space left on device`)
	if err := describePullError(overTransferAPI(full), ""); !errors.Is(err, ErrNoSpace) || !IsRecoverable(err) {
		t.Errorf("no space over the API: %v", err)
	}
	if err := overTransferAPI(fmt.Errorf("%s: %w", "r/app@"+testDigest, errdefs.ErrNotFound)); !errdefs.IsNotFound(describePullError(err, testDigest)) {
		t.Errorf("pin not found over the API: %v", err)
	}
}
