#!/usr/bin/env bash
# `make demo`: on a fresh Debian 12 machine, as root, installs the test bed,
# builds the plugin, starts containerd, a local registry holding a busybox
# image and a Nomad agent with the plugin (all under .work/demo), runs
# example-jobs/hello.nomad.hcl and shows its output and the containerd view.
# The daemons keep running for a look around; `make demo-stop` stops them.
# Re-runnable: a previous run's daemons are stopped and started afresh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
work=$root/.work/demo
export PATH="$root/.deps/bin:$PATH:/usr/local/sbin:/usr/sbin:/sbin"
unset AWS_CA_BUNDLE

say() { printf '\n==> %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
  echo "demo: needs root (containerd, runc, mounts)" >&2
  exit 1
fi

say "installing the test bed (make deps)"
bash hack/deps.sh all

say "building the plugin (make build)"
make --no-print-directory build

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
go run ./testbed/cmd/testbed up -dir "$work" >"$work/env.tmp"
mv "$work/env.tmp" "$work/env"
# shellcheck source=/dev/null
. "$work/env"
export NOMAD_ADDR
sed 's/^/    /' "$work/env"

say "nomad job run -var image=$IMAGE example-jobs/hello.nomad.hcl"
nomad job run -var "image=$IMAGE" example-jobs/hello.nomad.hcl

alloc= status=
for _ in $(seq 1 240); do
  read -r status alloc < <(nomad job allocs -t '{{range .}}{{.ClientStatus}} {{.ID}}{{"\n"}}{{end}}' hello | head -n1) || true
  case "$status" in complete | failed | lost) break ;; esac
  sleep 0.5
done
if [ "$status" != complete ]; then
  echo "demo: allocation ${alloc:-?} of job hello is ${status:-missing}" >&2
  [ -n "$alloc" ] && nomad alloc status "$alloc" >&2
  exit 1
fi

say "nomad alloc logs $alloc hello"
nomad alloc logs "$alloc" hello

say "ctr -n nomad containers ls"
ctr -a "$CONTAINERD_ADDRESS" -n nomad containers ls 2> >(grep -v DEPRECATION >&2)
say "ctr -n nomad images ls"
ctr -a "$CONTAINERD_ADDRESS" -n nomad images ls 2> >(grep -v DEPRECATION >&2)

cat <<MSG

demo: done. Still running, for a look around (addresses in .work/demo/env):
  export NOMAD_ADDR=$NOMAD_ADDR
  nomad job status hello
  ctr -a $CONTAINERD_ADDRESS -n nomad containers ls
Stop everything with: make demo-stop
MSG
