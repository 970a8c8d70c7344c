#!/usr/bin/env bash
# Builds the release archives into ${DIST:-dist}/:
#   nomad-driver-containerd_<version>_linux_<arch>.tar.gz  (amd64, arm64):
#     the binary, README.md and docs/
#   SHA256SUMS
# Reproducible: static, -trimpath, no VCS stamping, and tar/gzip entries with
# fixed owners, order and the commit's time, so the same commit gives the
# same bytes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
version=${VERSION:-$(hack/version.sh)}
dist=${DIST:-dist}
mtime=$(git log -1 --format=%ct 2>/dev/null || echo 0)
mkdir -p "$dist"
dist=$(cd "$dist" && pwd)
rm -f "$dist"/nomad-driver-containerd_*.tar.gz "$dist/SHA256SUMS"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for arch in amd64 arm64; do
  name="nomad-driver-containerd_${version}_linux_${arch}"
  mkdir -p "$work/$name"
  CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -buildvcs=false \
    -ldflags "-s -w -buildid= -X github.com/nomad-containerd/nomad-driver-containerd/driver.Version=$version" \
    -o "$work/$name/nomad-driver-containerd" .
  cp README.md "$work/$name/"
  cp -r docs "$work/$name/"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$mtime" --mode=u+rwX,go+rX,go-w \
    -C "$work" -cf - "$name" | gzip -n -9 > "$dist/$name.tar.gz"
done
(cd "$dist" && sha256sum nomad-driver-containerd_"${version}"_linux_*.tar.gz > SHA256SUMS)
echo "dist: $(cd "$dist" && cat SHA256SUMS)"
