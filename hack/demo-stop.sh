#!/usr/bin/env bash
# `make demo-stop`: stops, by the PIDs in their PID files, what `make demo`
# started (Nomad agent and what it spawned, containerd with its tasks and
# shims, the registry) and unmounts what they left under .work/demo.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$root/.work/demo
export PATH="$root/.deps/bin:$PATH:/usr/local/sbin:/usr/sbin:/sbin"

if [ ! -d "$work" ]; then
  echo "demo-stop: nothing to stop"
  exit 0
fi
CONTAINERD_ADDRESS= NOMAD_MARKER= NOMAD_ADDR= CNI_BRIDGE=
# shellcheck source=/dev/null
[ -f "$work/env" ] && . "$work/env"

# running PIDFILE BINARY: the PID in PIDFILE when that process still runs BINARY
running() {
  local pid
  read -r pid <"$1" 2>/dev/null || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2" || return 1
  echo "$pid"
}

# stop_pid PID SIGNAL GRACE: signal, wait up to GRACE seconds, then SIGKILL
stop_pid() {
  local pid=$1 i
  kill -s "$2" "$pid" 2>/dev/null || return 0
  for ((i = 0; i < $3 * 10; i++)); do
    [ -d "/proc/$pid" ] || return 0
    grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null
}

# with_env KV: PIDs whose environment holds KV
with_env() {
  local p
  for p in /proc/[0-9]*; do
    tr '\0' '\n' 2>/dev/null <"$p/environ" | grep -qxF -- "$1" && echo "${p#/proc/}"
  done
}

# shims_of ADDRESS: PIDs of the containerd shims serving that containerd
shims_of() {
  local p
  for p in /proc/[0-9]*; do
    tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -q -- "containerd-shim.* -address $1\( \|$\)" && echo "${p#/proc/}"
  done
}

# stop the demo's jobs while the agent runs, so that the driver removes
# their containers and their networks (namespaces, veths, CNI state)
if [ -n "$NOMAD_ADDR" ] && running "$work/nomad/nomad.pid" nomad >/dev/null; then
  export NOMAD_ADDR
  for job in $(nomad job status 2>/dev/null | awk 'NR > 1 && $4 != "dead" {print $1}'); do
    echo "demo-stop: stopping job $job"
    nomad job stop -purge -detach "$job" >/dev/null
  done
  for _ in $(seq 1 60); do
    [ -z "$(ctr -a "$CONTAINERD_ADDRESS" -n nomad containers ls -q 2>/dev/null)" ] && break
    sleep 0.5
  done
fi

if pid=$(running "$work/nomad/nomad.pid" nomad); then
  echo "demo-stop: stopping the Nomad agent (pid $pid)"
  stop_pid "$pid" INT 15
fi
if [ -n "$NOMAD_MARKER" ]; then
  for pid in $(with_env "$NOMAD_MARKER"); do
    echo "demo-stop: killing pid $pid, started by the Nomad agent"
    kill -9 "$pid" 2>/dev/null
  done
fi

if pid=$(running "$work/containerd/containerd.pid" containerd); then
  ctr=(ctr -a "$CONTAINERD_ADDRESS" -n nomad)
  for id in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
    echo "demo-stop: removing task $id"
    "${ctr[@]}" tasks kill -s SIGKILL "$id" >/dev/null 2>&1
    "${ctr[@]}" tasks rm -f "$id" >/dev/null 2>&1
  done
  for id in $("${ctr[@]}" containers ls -q 2>/dev/null); do
    echo "demo-stop: removing container $id"
    "${ctr[@]}" containers rm "$id" >/dev/null 2>&1
  done
  echo "demo-stop: stopping containerd (pid $pid)"
  stop_pid "$pid" TERM 10
fi
if [ -n "$CONTAINERD_ADDRESS" ]; then
  for pid in $(shims_of "$CONTAINERD_ADDRESS"); do
    echo "demo-stop: killing shim $pid and its children"
    pkids=$(ps -o pid= --ppid "$pid" 2>/dev/null)
    kill -9 "$pid" $pkids 2>/dev/null
  done
fi

if pid=$(running "$work/registry/registry.pid" docker-registry); then
  echo "demo-stop: stopping the registry (pid $pid)"
  stop_pid "$pid" TERM 5
fi
rm -f "$work"/*/*.pid
if [ -n "$CNI_BRIDGE" ] && ip link show "$CNI_BRIDGE" >/dev/null 2>&1; then
  echo "demo-stop: deleting the bridge $CNI_BRIDGE"
  ip link del "$CNI_BRIDGE"
fi
# host-local's address records of the demo's network (named like its bridge)
[ -n "$CNI_BRIDGE" ] && rm -rf "/var/lib/cni/networks/$CNI_BRIDGE"

# unmount, deepest first, what is left under the demo's dirs
dirs=("$work")
case "$CONTAINERD_ADDRESS" in /run/ndc-*) dirs+=("$(dirname "$CONTAINERD_ADDRESS")") ;; esac
for d in "${dirs[@]}"; do
  awk -v d="$d/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
    m=$(printf '%b' "$m")
    umount "$m" 2>/dev/null || umount -l "$m"
  done
done
case "$CONTAINERD_ADDRESS" in /run/ndc-*) rm -rf "$(dirname "$CONTAINERD_ADDRESS")" ;; esac
echo "demo-stop: stopped (logs are in $work)"
