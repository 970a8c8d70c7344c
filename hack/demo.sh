#!/usr/bin/env bash
# `make demo`: on a fresh Debian 12 machine, as root, installs what the demo
# needs of the test bed, builds the plugin, starts containerd, a local
# registry holding a busybox image and a Nomad agent with the plugin (all
# under .work/demo), runs example-jobs/hello.nomad.hcl and shows its output,
# then starts example-jobs/service.nomad.hcl and shows its logs, an exec into
# it and the containerd view.
# The daemons keep running for a look around; `make demo-stop` stops them.
# Re-runnable: a previous run's daemons are stopped and started afresh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
work=$root/.work/demo
build=$root/.work/demo-build
export PATH="$root/.deps/bin:$PATH:/usr/local/sbin:/usr/sbin:/sbin"
unset AWS_CA_BUNDLE

# The demo's install list, handed to hack/deps.sh: only what the demo runs
# (demo_test.go checks it against what the demo and `testbed up` use).
# `make deps` / `make test` install everything, cosign included.
DEMO_APT="runc iptables iproute2 busybox-static docker-registry"
DEMO_TOOLS="containerd nomad"
DEMO_CNI="bridge host-local portmap firewall loopback"

start=$SECONDS
say() { printf '\n==> [%3ds] %s\n' "$((SECONDS - start))" "$*"; }

if [ "$(id -u)" != 0 ]; then
  echo "demo: needs root (containerd, runc, mounts)" >&2
  exit 1
fi

mkdir -p "$build"
say "installing the demo's test bed (apt: $DEMO_APT)"
DEPS_APT="$DEMO_APT" bash hack/deps.sh apt

# the tools and the plugin are independent builds: run them at once, each
# timed, each with its own log. The demo's testbed command shares most of
# its packages with the plugin: built right after it with the same flags
# (-trimpath), it finds them in the build cache instead of compiling them
# a second time alongside.
say "building $DEMO_TOOLS, the CNI plugins ($DEMO_CNI), the plugin and the demo's testbed command, in parallel"
DEPS_CNI="$DEMO_CNI" bash hack/deps.sh cni $DEMO_TOOLS &
deps_pid=$!
(
  s=$SECONDS
  make --no-print-directory build >"$build/plugin.log" 2>&1 || { cat "$build/plugin.log" >&2; exit 1; }
  echo "demo: plugin: built in $((SECONDS - s))s"
  s=$SECONDS
  go build -trimpath -o "$build/testbed" ./testbed/cmd/testbed >"$build/testbed.log" 2>&1 || { cat "$build/testbed.log" >&2; exit 1; }
  echo "demo: testbed: built in $((SECONDS - s))s"
) &
plugin_pid=$!
failed=0
for pid in $deps_pid $plugin_pid; do
  wait "$pid" || failed=1
done
[ "$failed" = 0 ] || { echo "demo: a build failed (see above)" >&2; exit 1; }

if ls "$work"/*/*.pid >/dev/null 2>&1; then
  say "stopping the previous demo run"
  bash hack/demo-stop.sh
fi
if grep -q " $work/" /proc/self/mountinfo; then
  echo "demo: mounts left under $work; run \`make demo-stop\`" >&2
  exit 1
fi
rm -rf "$work"
mkdir -p "$work"

say "starting containerd, a registry with the busybox image and a Nomad agent"
"$build/testbed" up -dir "$work" >"$work/env.tmp"
mv "$work/env.tmp" "$work/env"
# shellcheck source=/dev/null
. "$work/env"
export NOMAD_ADDR
sed 's/^/    /' "$work/env"

# wait_alloc JOB WANT...: the ID of JOB's first allocation once its client
# status is one of WANT; fails (showing the allocation) on any other end state
wait_alloc() {
  local job=$1 alloc= status=
  shift
  for _ in $(seq 1 240); do
    read -r status alloc < <(nomad job allocs -t '{{range .}}{{.ClientStatus}} {{.ID}}{{"\n"}}{{end}}' "$job" | head -n1) || true
    for want in "$@"; do [ "$status" = "$want" ] && echo "$alloc" && return 0; done
    case "$status" in complete | failed | lost) break ;; esac
    sleep 0.5
  done
  echo "demo: allocation ${alloc:-?} of job $job is ${status:-missing}, not $*" >&2
  [ -n "$alloc" ] && nomad alloc status "$alloc" >&2
  return 1
}

ctr() { command ctr -a "$CONTAINERD_ADDRESS" -n nomad "$@" 2> >(grep -v DEPRECATION >&2); }

say "nomad job run -var image=$IMAGE example-jobs/hello.nomad.hcl"
nomad job run -var "image=$IMAGE" example-jobs/hello.nomad.hcl
alloc=$(wait_alloc hello complete)
first_job=$((SECONDS - start))

say "nomad alloc logs $alloc hello"
nomad alloc logs "$alloc" hello

say "nomad job run -detach -var image=$IMAGE example-jobs/service.nomad.hcl (a long-running task)"
nomad job run -detach -var "image=$IMAGE" example-jobs/service.nomad.hcl
svc=$(wait_alloc service running)
for _ in $(seq 1 40); do
  nomad alloc logs "$svc" web 2>/dev/null | grep -q beat-1 && break
  sleep 0.5
done

say "nomad alloc logs $svc web"
nomad alloc logs "$svc" web | head -n 3

say "nomad alloc exec -task web $svc cat /local/app.conf"
nomad alloc exec -task web "$svc" cat /local/app.conf

say "ctr -n nomad containers ls"
ctr containers ls
say "ctr -n nomad tasks ls"
ctr tasks ls
say "ctr -n nomad images ls"
ctr images ls

cat <<MSG

demo: done; the first job ran ${first_job}s after the start. Still running, for a look around (addresses in .work/demo/env):
  export NOMAD_ADDR=$NOMAD_ADDR
  nomad job status service
  nomad alloc logs -f $svc web
  ctr -a $CONTAINERD_ADDRESS -n nomad containers ls
Stop everything with: make demo-stop
MSG
