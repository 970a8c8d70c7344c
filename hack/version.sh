#!/usr/bin/env bash
# Prints the plugin's version as semver, which Nomad requires of a plugin:
#   on a release tag vX.Y.Z          -> X.Y.Z
#   after a tag, or with no tag yet  -> X.Y.Z-dev.N+g<sha>[.dirty] (0.0.0 before any tag)
#   outside a git checkout           -> 0.0.0-dev
set -euo pipefail
cd "$(dirname "$0")/.."
if ! sha=$(git rev-parse --short HEAD 2>/dev/null); then
  echo "0.0.0-dev"
  exit 0
fi
dirty=""
git diff --quiet HEAD 2>/dev/null || dirty=".dirty"
if tag=$(git describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null); then
  base=${tag#v}
  n=$(git rev-list --count "$tag"..HEAD)
else
  base="0.0.0"
  n=$(git rev-list --count HEAD)
fi
if [ "$n" = 0 ] && [ -z "$dirty" ]; then
  echo "$base"
else
  echo "${base%%[-+]*}-dev.$n+g$sha$dirty"
fi
