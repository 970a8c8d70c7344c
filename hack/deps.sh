#!/usr/bin/env bash
# Installs the test bed into .deps/ (git-ignored): Debian packages through apt,
# containerd, the CNI plugins, cosign and Nomad built from the Go module proxy.
# Idempotent: a tool whose pinned version is already built is skipped.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=versions.env
. "$root/hack/versions.env"
bin="$root/.deps/bin"
cni="$root/.deps/cni/bin"
stamp="$root/.deps/stamps"
mkdir -p "$bin" "$cni" "$stamp"
export GOFLAGS=-buildvcs=false

log() { printf 'deps: %s\n' "$*"; }

apt_install() {
  local missing=()
  for p in $DEBIAN_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  # the registry package starts a system service on :5000; tests run their own
  if systemctl is-active --quiet docker-registry 2>/dev/null; then
    systemctl disable --now docker-registry >/dev/null 2>&1 || true
  fi
}

# built NAME VERSION: true when NAME was already built at VERSION
built() { [ "$(cat "$stamp/$1" 2>/dev/null)" = "$2" ]; }
mark() { echo "$2" >"$stamp/$1"; }

build_containerd() {
  built containerd "$CONTAINERD_VERSION" && return 0
  log "building containerd $CONTAINERD_VERSION"
  GOBIN="$bin" CGO_ENABLED=0 go install -tags "no_btrfs" \
    "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION"
  mark containerd "$CONTAINERD_VERSION"
}

build_cni() {
  built cni "$CNI_PLUGINS_VERSION" && return 0
  log "building CNI plugins $CNI_PLUGINS_VERSION"
  local m=github.com/containernetworking/plugins/plugins
  GOBIN="$cni" CGO_ENABLED=0 go install \
    "$m/main/bridge@$CNI_PLUGINS_VERSION" "$m/main/loopback@$CNI_PLUGINS_VERSION" \
    "$m/main/macvlan@$CNI_PLUGINS_VERSION" "$m/main/ptp@$CNI_PLUGINS_VERSION" \
    "$m/main/host-device@$CNI_PLUGINS_VERSION" "$m/main/vlan@$CNI_PLUGINS_VERSION" \
    "$m/ipam/host-local@$CNI_PLUGINS_VERSION" "$m/ipam/static@$CNI_PLUGINS_VERSION" \
    "$m/meta/portmap@$CNI_PLUGINS_VERSION" "$m/meta/firewall@$CNI_PLUGINS_VERSION" \
    "$m/meta/tuning@$CNI_PLUGINS_VERSION" "$m/meta/bandwidth@$CNI_PLUGINS_VERSION"
  mark cni "$CNI_PLUGINS_VERSION"
}

build_cosign() {
  built cosign "$COSIGN_VERSION" && return 0
  log "building cosign $COSIGN_VERSION"
  GOBIN="$bin" CGO_ENABLED=0 go install "github.com/sigstore/cosign/v3/cmd/cosign@$COSIGN_VERSION"
  mark cosign "$COSIGN_VERSION"
}

build_cosign2() {
  built cosign2 "$COSIGN_V2_VERSION" && return 0
  log "building cosign $COSIGN_V2_VERSION as cosign2"
  local tmp
  tmp=$(mktemp -d)
  GOBIN="$tmp" CGO_ENABLED=0 go install "github.com/sigstore/cosign/v2/cmd/cosign@$COSIGN_V2_VERSION"
  mv "$tmp/cosign" "$bin/cosign2"
  rmdir "$tmp"
  mark cosign2 "$COSIGN_V2_VERSION"
}

build_nomad() {
  built nomad "$NOMAD_VERSION" && return 0
  log "building nomad $NOMAD_VERSION"
  # Nomad v1.6.1 (the last MPL-2.0 release) replaces its api submodule with a
  # local path, so it is built through a small wrapper module that pins its
  # other replaces and the api at the v1.6.1 commit.
  (cd "$root/hack/tools/nomad" && go build -o "$bin/nomad" github.com/hashicorp/nomad)
  mark nomad "$NOMAD_VERSION"
}

what=${1:-all}
case "$what" in
  apt) apt_install ;;
  containerd) build_containerd ;;
  cni) build_cni ;;
  cosign) build_cosign; build_cosign2 ;;
  nomad) build_nomad ;;
  all) apt_install; build_containerd; build_cni; build_nomad; build_cosign; build_cosign2 ;;
  *) echo "usage: $0 [all|apt|containerd|cni|cosign|nomad]" >&2; exit 2 ;;
esac
