package image

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	remoteerrors "github.com/containerd/containerd/v2/core/remotes/errors"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
)

// ErrDigestMismatch is wrapped by pull errors where the content the registry
// served does not match the digest it was asked for (a pinned reference or a
// manifest/layer digest).
var ErrDigestMismatch = errors.New("digest mismatch")

// ErrPullStalled is wrapped by the error of a pull that was cancelled
// because no data arrived from the registry for the activity timeout. It is
// recoverable.
var ErrPullStalled = errors.New("pull stalled")

// ErrNoSpace is wrapped by the error of a pull that ran out of space in
// containerd's root (content store or snapshots). It is recoverable: the
// task's image is fine, the node has to free space.
var ErrNoSpace = errors.New("containerd's root filesystem is full")

// IsRecoverable reports whether a pull error is worth retrying: an unreachable
// registry, timeouts, stalls, throttling and server errors are; a bad
// reference, a missing image, refused credentials, a failed credential
// lookup and digest mismatches are not.
func IsRecoverable(err error) bool {
	if err == nil {
		return false
	}
	switch {
	// a deadline first: a verification or a lookup that ran out of time
	// may pass when tried again
	case errors.Is(err, ErrPullStalled), errors.Is(err, ErrNoSpace), errors.Is(err, context.DeadlineExceeded):
		return true
	case errors.Is(err, ErrInvalidReference),
		errors.Is(err, ErrDigestMismatch),
		errors.Is(err, ErrNotVerified),
		errors.Is(err, ErrStoreChanged),
		errors.Is(err, ErrInvalidPlatform),
		errors.Is(err, fs.ErrNotExist),
		errors.Is(err, ErrCredentialLookup),
		errors.Is(err, docker.ErrInvalidAuthorization),
		errors.Is(err, context.Canceled):
		return false
	}

	var status remoteerrors.ErrUnexpectedStatus
	if errors.As(err, &status) {
		return recoverableStatus(status.StatusCode)
	}

	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	for _, errno := range []syscall.Errno{
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED,
		syscall.EPIPE, syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH,
	} {
		if errors.Is(err, errno) {
			return true
		}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}

	switch {
	case errdefs.IsNotFound(err),
		errdefs.IsInvalidArgument(err),
		errdefs.IsNotImplemented(err),
		errdefs.IsFailedPrecondition(err),
		errdefs.IsPermissionDenied(err),
		errdefs.IsUnauthorized(err):
		return false
	case errdefs.IsUnavailable(err),
		errdefs.IsDeadlineExceeded(err),
		errdefs.IsResourceExhausted(err),
		errdefs.IsAborted(err):
		return true
	}
	return false
}

func recoverableStatus(code int) bool {
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests:
		return true
	case code >= 500:
		return true
	}
	return false
}

// isContentMismatch tells whether a pull failed because fetched content did
// not hash or size to its descriptor (containerd reports these as failed
// preconditions of the content commit).
func isContentMismatch(err error) bool {
	if !errdefs.IsFailedPrecondition(err) {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "unexpected commit digest") || strings.Contains(msg, "unexpected commit size")
}

// transferError is an error of containerd's transfer service. It crossed
// the daemon's API as a code (kept: errdefs classes, cancellation) and a
// message; the causes IsRecoverable looks for that the code does not carry
// (a registry's HTTP status, a refused authorization, a failed connection)
// are read back from the message.
type transferError struct {
	err    error
	causes []error
}

func (e *transferError) Error() string   { return e.err.Error() }
func (e *transferError) Unwrap() []error { return append([]error{e.err}, e.causes...) }

var (
	// unexpectedStatus is how remotes/errors.ErrUnexpectedStatus reads.
	unexpectedStatus = regexp.MustCompile(`unexpected status from ([A-Z]+) request to (\S+): (\d{3})\b`)
	// httpRequest is how a *url.Error of Go's HTTP client reads.
	httpRequest = regexp.MustCompile(`\b(Get|Head|Post|Put|Patch|Delete) "([^"]+)": (.+)$`)
	// remoteErrnos are the network errors that make a pull recoverable.
	remoteErrnos = []syscall.Errno{
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED,
		syscall.EPIPE, syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH,
	}
)

// reviveTransferError returns err, an error of client.Transfer, with the
// causes its message names added to its chain.
func reviveTransferError(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	var causes []error
	if m := unexpectedStatus.FindStringSubmatch(msg); m != nil {
		code, _ := strconv.Atoi(m[3])
		causes = append(causes, remoteerrors.ErrUnexpectedStatus{Status: m[3], StatusCode: code, RequestMethod: m[1], RequestURL: m[2]})
	}
	if strings.Contains(msg, docker.ErrInvalidAuthorization.Error()) {
		causes = append(causes, docker.ErrInvalidAuthorization)
	}
	if m := httpRequest.FindStringSubmatch(msg); m != nil {
		causes = append(causes, &url.Error{Op: m[1], URL: m[2], Err: errors.New(m[3])})
	}
	for _, errno := range remoteErrnos {
		if strings.Contains(msg, errno.Error()) {
			causes = append(causes, errno)
		}
	}
	if strings.Contains(msg, io.ErrUnexpectedEOF.Error()) {
		causes = append(causes, io.ErrUnexpectedEOF)
	}
	if len(causes) == 0 {
		return err
	}
	return &transferError{err: err, causes: causes}
}

// redactedError hides credentials in the message of an error while keeping
// the chain for errors.Is / errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redact returns err with every occurrence of the credentials in any of
// auths (plain, URL-encoded, and user:password in base64 as in a basic auth
// header or a docker config file) removed from its message. The password is
// always removed; user names shorter than three characters are left alone,
// since removing them would garble every message.
func redact(err error, auths ...*Auth) error {
	if err == nil {
		return err
	}
	var secrets []string
	for _, auth := range auths {
		if auth == nil {
			continue
		}
		for _, s := range []string{auth.Password, auth.Username} {
			if s == "" || (s == auth.Username && s != auth.Password && len(s) < 3) {
				continue
			}
			// As written in a query, a path and a URL's user info.
			secrets = append(secrets, s, url.QueryEscape(s), url.PathEscape(s), url.User(s).String())
		}
		if auth.Password != "" {
			basic := auth.Username + ":" + auth.Password
			secrets = append(secrets, base64.StdEncoding.EncodeToString([]byte(basic)), base64.RawStdEncoding.EncodeToString([]byte(basic)))
		}
	}
	if len(secrets) == 0 {
		return err
	}
	// Longest first, so that a secret containing another is removed whole.
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	msg := err.Error()
	changed := false
	for _, s := range secrets {
		if strings.Contains(msg, s) {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
			changed = true
		}
	}
	if !changed {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

// describePullError makes containerd's pull errors say what went wrong in
// terms of the reference, keeping the chain for IsRecoverable.
func describePullError(err error, pin digest.Digest) error {
	switch {
	case isContentMismatch(err):
		return fmt.Errorf("%w: content served by the registry does not match its digest: %w", ErrDigestMismatch, err)
	case pin != "" && errdefs.IsNotFound(err):
		return fmt.Errorf("pinned digest %s not found: the registry has no manifest with that digest: %w", pin, err)
	case isNoSpace(err):
		return fmt.Errorf("%w: free space there for the image's content and unpacked layers: %w", ErrNoSpace, err)
	}
	return err
}

// isNoSpace tells whether containerd ran out of space storing or unpacking
// content; the errno comes back from containerd as text only.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), syscall.ENOSPC.Error())
}
