package testbed

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// BundleMediaType is the media type of the keyless bundles made here.
const BundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"

// VirtualSigstore is a Sigstore instance made in the test (certificate
// authority, transparency log, timestamp authority), sigstore-go's own test
// instance, with its trusted root written as trusted_root.json at RootPath.
type VirtualSigstore struct {
	*ca.VirtualSigstore
	RootPath string
}

// NewVirtualSigstore makes a Sigstore instance and writes its trusted root.
func NewVirtualSigstore(t testing.TB) *VirtualSigstore {
	t.Helper()
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	// the virtual log's ID is its hex text; a trusted root holds its bytes
	logs := map[string]*root.TransparencyLog{}
	for id, l := range vs.RekorLogs() {
		if l.ID, err = hex.DecodeString(id); err != nil {
			t.Fatal(err)
		}
		logs[id] = l
	}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, vs.FulcioCertificateAuthorities(), vs.CTLogs(), vs.TimestampingAuthorities(), logs)
	if err != nil {
		t.Fatal(err)
	}
	data, err := tr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "trusted_root.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return &VirtualSigstore{VirtualSigstore: vs, RootPath: path}
}

// BundleOptions shape a keyless bundle.
type BundleOptions struct {
	At           time.Time // the log's integrated time; zero: in the certificate's validity
	NoLogEntry   bool
	NoTimestamps bool
}

// SignImage is the v0.3 bundle `cosign sign` makes for dgst keyless: the
// in-toto statement of its sign predicate, signed with a certificate for
// subject from issuer, logged in vs's log and timestamped by its TSA.
func (vs *VirtualSigstore) SignImage(t testing.TB, issuer, subject string, dgst digest.Digest, o BundleOptions) []byte {
	t.Helper()
	if o.At.IsZero() {
		o.At = time.Now().Add(5 * time.Minute)
	}
	statement := fmt.Sprintf(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{%q:%q}}],"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{}}`,
		dgst.Algorithm().String(), dgst.Encoded())
	e, err := vs.AttestAtTime(subject, issuer, []byte(statement), o.At, true)
	if err != nil {
		t.Fatal(err)
	}
	vc, _ := e.VerificationContent()
	sc, _ := e.SignatureContent()
	env := sc.EnvelopeContent().RawEnvelope()
	payload, _ := base64.StdEncoding.DecodeString(env.Payload)
	sig, _ := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	vm := &protobundle.VerificationMaterial{
		Content:                   &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: vc.Certificate().Raw}},
		TimestampVerificationData: &protobundle.TimestampVerificationData{},
	}
	if !o.NoLogEntry {
		entries, _ := e.TlogEntries()
		for _, le := range entries {
			vm.TlogEntries = append(vm.TlogEntries, vs.logEntry(t, le))
		}
	}
	if !o.NoTimestamps {
		ts, _ := e.Timestamps()
		for _, s := range ts {
			vm.TimestampVerificationData.Rfc3161Timestamps = append(vm.TimestampVerificationData.Rfc3161Timestamps, &protocommon.RFC3161SignedTimestamp{SignedTimestamp: s})
		}
	}
	b, err := protojson.Marshal(&protobundle.Bundle{
		MediaType:            BundleMediaType,
		VerificationMaterial: vm,
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
			Payload: payload, PayloadType: env.PayloadType, Signatures: []*protodsse.Signature{{Sig: sig}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// logEntry is le as a bundle carries it: its kind and the log's signed
// entry timestamp, which the virtual log keeps apart, filled in.
func (vs *VirtualSigstore) logEntry(t testing.TB, le *tlog.Entry) *protorekor.TransparencyLogEntry {
	t.Helper()
	tle := proto.Clone(le.TransparencyLogEntry()).(*protorekor.TransparencyLogEntry)
	tle.KindVersion = &protorekor.KindVersion{Kind: "intoto", Version: "0.0.2"}
	logID, err := vs.RekorLogID()
	if err != nil {
		t.Fatal(err)
	}
	set, err := vs.RekorSignPayload(tlog.RekorPayload{Body: base64.StdEncoding.EncodeToString(tle.CanonicalizedBody),
		IntegratedTime: tle.IntegratedTime, LogIndex: tle.LogIndex, LogID: logID})
	if err != nil {
		t.Fatal(err)
	}
	tle.InclusionPromise = &protorekor.InclusionPromise{SignedEntryTimestamp: set}
	return tle
}

// AttachBundle stores bundle in the plain HTTP registry at host as cosign
// v3 does without a referrers API: an artifact manifest whose subject is
// the image, listed in the index tagged "sha256-<hex>" of the image digest.
func AttachBundle(ctx context.Context, host, repo string, subject ocispec.Descriptor, bundle []byte) error {
	empty := []byte("{}")
	emptyDesc := ocispec.Descriptor{MediaType: "application/vnd.oci.empty.v1+json", Digest: digest.FromBytes(empty), Size: int64(len(empty))}
	layer := ocispec.Descriptor{MediaType: BundleMediaType, Digest: digest.FromBytes(bundle), Size: int64(len(bundle))}
	m, err := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		ArtifactType: BundleMediaType, Config: emptyDesc, Subject: &subject, Layers: []ocispec.Descriptor{layer}})
	if err != nil {
		return err
	}
	md := digest.FromBytes(m)
	blobs := map[digest.Digest][]byte{emptyDesc.Digest: empty, layer.Digest: bundle}
	if _, err := PushManifest(ctx, host, repo+":bundle-"+md.Encoded()[:16], ocispec.MediaTypeImageManifest, m, blobs); err != nil {
		return fmt.Errorf("failed to push the bundle manifest: %w", err)
	}
	idx, err := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: BundleMediaType, Digest: md, Size: int64(len(m))}}})
	if err != nil {
		return err
	}
	tag := strings.Replace(subject.Digest.String(), ":", "-", 1)
	if _, err := PushManifest(ctx, host, repo+":"+tag, ocispec.MediaTypeImageIndex, idx, nil); err != nil {
		return fmt.Errorf("failed to push the referrers index: %w", err)
	}
	return nil
}
