#!/usr/bin/env bash
# Installs the test bed into .deps/ (git-ignored): Debian packages through apt,
# containerd, the CNI plugins, cosign, Nomad and runc built from the Go module
# proxy.
# Idempotent: a tool whose pinned version is already built is skipped.
#
# usage: deps.sh STEP...   steps: apt containerd cni nomad cosign stargz runc, or all;
# and bench (not in all): the Debian packages only `make bench` needs.
# apt runs first; the Go builds then run in parallel, each timed. DEPS_APT
# (Debian packages) and DEPS_CNI (plugin names) narrow apt and cni to what a
# caller needs (`make demo`, see hack/demo.sh); unset, they install everything.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=versions.env
. "$root/hack/versions.env"
bin="$root/.deps/bin"
cni="$root/.deps/cni/bin"
stamp="$root/.deps/stamps"
logs="$root/.work/deps"
mkdir -p "$bin" "$cni" "$stamp" "$logs"
export GOFLAGS=-buildvcs=false

log() { printf 'deps: %s\n' "$*"; }

apt_install() {
  local missing=()
  for p in ${DEPS_APT:-$DEBIAN_PACKAGES}; do
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

# bench_apt installs DEBIAN_BENCH_PACKAGES (docker.io, crun) with every
# service start refused while they install (policy-rc.d exits 101): the
# bench runs a dockerd and a containerd of its own, and none of the
# packages' daemons may run beside it. Where systemd runs, the packages'
# units are then disabled, and stopped and masked if one started anyway.
bench_apt() {
  local missing=() p
  for p in $DEBIAN_BENCH_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]} (no service started)"
  local policy=/usr/sbin/policy-rc.d saved="" rc=0
  if [ -e "$policy" ]; then
    saved=$(mktemp)
    cp -p "$policy" "$saved"
  fi
  printf '#!/bin/sh\n# hack/deps.sh bench: no service starts while bench packages install\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
  if [ -n "$saved" ]; then mv "$saved" "$policy"; else rm -f "$policy"; fi
  [ $rc -eq 0 ] || return $rc
  if [ -d /run/systemd/system ]; then
    local unit
    for unit in docker.socket docker.service containerd.service; do
      systemctl disable "$unit" >/dev/null 2>&1 || true
      if systemctl is-active --quiet "$unit" 2>/dev/null; then
        systemctl stop "$unit" && systemctl mask "$unit" >/dev/null
      fi
    done
  fi
}

# built NAME VERSION: true when NAME was already built at VERSION
built() { [ "$(cat "$stamp/$1" 2>/dev/null)" = "$2" ]; }
mark() { echo "$2" >"$stamp/$1"; }

# containerd without the plugins neither the driver nor the test bed loads
# (CRI and its Kubernetes packages, the btrfs, devmapper and zfs
# snapshotters, OpenTelemetry export): a fifth fewer packages to compile.
# The stamp carries the tags, so a build with other tags is redone.
CONTAINERD_TAGS="no_cri no_btrfs no_devmapper no_zfs no_tracing"

build_containerd() {
  local want="$CONTAINERD_VERSION $CONTAINERD_TAGS"
  built containerd "$want" && log "containerd: $CONTAINERD_VERSION already built" && return 0
  GOBIN="$bin" CGO_ENABLED=0 go install -tags "$CONTAINERD_TAGS" -ldflags "-s -w" \
    "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION"
  mark containerd "$want"
}

# build_cni builds the plugins named in DEPS_CNI (all when unset). The stamp
# "cni" stands for the whole set, "cni-<name>" for one plugin.
build_cni() {
  built cni "$CNI_PLUGINS_VERSION" && log "cni: $CNI_PLUGINS_VERSION already built" && return 0
  local m=github.com/containernetworking/plugins/plugins
  local all=(
    "$m/main/bridge@$CNI_PLUGINS_VERSION" "$m/main/loopback@$CNI_PLUGINS_VERSION"
    "$m/main/macvlan@$CNI_PLUGINS_VERSION" "$m/main/ptp@$CNI_PLUGINS_VERSION"
    "$m/main/host-device@$CNI_PLUGINS_VERSION" "$m/main/vlan@$CNI_PLUGINS_VERSION"
    "$m/ipam/host-local@$CNI_PLUGINS_VERSION" "$m/ipam/static@$CNI_PLUGINS_VERSION"
    "$m/meta/portmap@$CNI_PLUGINS_VERSION" "$m/meta/firewall@$CNI_PLUGINS_VERSION"
    "$m/meta/tuning@$CNI_PLUGINS_VERSION" "$m/meta/bandwidth@$CNI_PLUGINS_VERSION"
  )
  local want=() names=() p name
  for p in "${all[@]}"; do
    name=${p%@*}
    name=${name##*/}
    if [ -n "${DEPS_CNI:-}" ] && ! [[ " $DEPS_CNI " == *" $name "* ]]; then
      continue
    fi
    built "cni-$name" "$CNI_PLUGINS_VERSION" && continue
    want+=("$p")
    names+=("$name")
  done
  if [ ${#want[@]} -eq 0 ]; then
    log "cni: ${DEPS_CNI:-all} $CNI_PLUGINS_VERSION already built"
    return 0
  fi
  GOBIN="$cni" CGO_ENABLED=0 go install "${want[@]}"
  for name in "${names[@]}"; do mark "cni-$name" "$CNI_PLUGINS_VERSION"; done
  [ -z "${DEPS_CNI:-}" ] && mark cni "$CNI_PLUGINS_VERSION"
  return 0
}

build_cosign() {
  built cosign "$COSIGN_VERSION" && log "cosign: $COSIGN_VERSION already built" && return 0
  GOBIN="$bin" CGO_ENABLED=0 go install "github.com/sigstore/cosign/v3/cmd/cosign@$COSIGN_VERSION"
  mark cosign "$COSIGN_VERSION"
}

build_cosign2() {
  built cosign2 "$COSIGN_V2_VERSION" && log "cosign2: $COSIGN_V2_VERSION already built" && return 0
  local tmp
  tmp=$(mktemp -d)
  GOBIN="$tmp" CGO_ENABLED=0 go install "github.com/sigstore/cosign/v2/cmd/cosign@$COSIGN_V2_VERSION"
  mv "$tmp/cosign" "$bin/cosign2"
  rmdir "$tmp"
  mark cosign2 "$COSIGN_V2_VERSION"
}

build_nomad() {
  # the stamp names the build: a Nomad built before cloud auto-join was
  # left out is built again
  local want="$NOMAD_VERSION no-cloud-auto-join"
  built nomad "$want" && log "nomad: $NOMAD_VERSION already built" && return 0
  # Nomad v1.6.1 (the last MPL-2.0 release) replaces its api submodule with a
  # local path, so it is built through a small wrapper module that pins its
  # other replaces and the api at the v1.6.1 commit, and leaves out
  # go-discover's cloud SDKs (hack/tools/nomad/discover). No symbol table or
  # DWARF (-s -w): the link of a binary this size is a large part of its
  # build on a small machine.
  (cd "$root/hack/tools/nomad" && go build -ldflags "-s -w" -o "$bin/nomad" github.com/hashicorp/nomad)
  mark nomad "$want"
}

build_stargz() {
  built stargz "$STARGZ_VERSION" && log "stargz: $STARGZ_VERSION already built" && return 0
  # The stargz snapshotter's own command is a module the Go module proxy
  # does not serve: a small wrapper module serves its snapshotter service,
  # pinned in hack/tools/stargz/go.mod, as containerd's proxy plugin.
  (cd "$root/hack/tools/stargz" && CGO_ENABLED=0 go build -o "$bin/containerd-stargz-grpc" nomad-driver-containerd/hack/tools/stargz)
  mark stargz "$STARGZ_VERSION"
}

# build_runc builds runc with cgo and libseccomp (Debian's libseccomp-dev,
# installed by the apt step) and stamps its version into `runc --version`
# and `runc features`, which the fingerprint reads. The test bed runs it in
# place of Debian's: testbed.LookBin finds .deps/bin first.
build_runc() {
  built runc "$RUNC_VERSION" && log "runc: $RUNC_VERSION already built" && return 0
  GOBIN="$bin" CGO_ENABLED=1 go install -tags "seccomp urfave_cli_no_docs" \
    -ldflags "-X main.version=${RUNC_VERSION#v} -X main.gitCommit=$RUNC_VERSION" \
    "github.com/opencontainers/runc@$RUNC_VERSION"
  mark runc "$RUNC_VERSION"
}

# timed NAME CMD...: runs CMD, then says how long it took
timed() {
  local name=$1 start=$SECONDS
  shift
  "$@"
  log "$name: done in $((SECONDS - start))s"
}

# parallel NAME...: runs the build_NAME functions at once, each with its
# output in .work/deps/NAME.log; fails, showing the log, if one fails
parallel() {
  local name pids=() failed=0 i=0
  for name in "$@"; do
    log "$name: started (log: ${logs#"$root"/}/$name.log)"
    timed "$name" "build_$name" >"$logs/$name.log" 2>&1 &
    pids+=($!)
  done
  for name in "$@"; do
    if wait "${pids[$i]}"; then
      grep '^deps: ' "$logs/$name.log" || true
    else
      log "$name: failed:"
      tail -n 30 "$logs/$name.log" >&2
      failed=1
    fi
    i=$((i + 1))
  done
  return $failed
}

steps=()
for s in "${@:-all}"; do
  case "$s" in
    all) steps+=(apt containerd cni nomad cosign cosign2 stargz runc) ;;
    cosign) steps+=(cosign cosign2) ;;
    apt | bench | containerd | cni | nomad | stargz | runc) steps+=("$s") ;;
    *) echo "usage: $0 [all|apt|bench|containerd|cni|cosign|nomad|stargz|runc]..." >&2; exit 2 ;;
  esac
done
builds=()
for s in "${steps[@]}"; do
  if [ "$s" = apt ]; then
    timed apt apt_install
  elif [ "$s" = bench ]; then
    timed bench bench_apt
  else
    builds+=("$s")
  fi
done
if [ ${#builds[@]} -gt 0 ]; then
  parallel "${builds[@]}"
fi
