#!/usr/bin/env bash
# Install a wheelhouse made by `make wheelhouse` into the current Python, without an index:
#   bash scripts/offline_install.sh wheelhouse
# on a machine without internet that already has CUDA PyTorch (docs/scaling.md, "GPU nodes without internet").
# "The current Python" is $PYTHON if set, else `python3` on PATH (an activated venv's). pip takes the
# wheels in DIR and the distributions already installed, nothing else: a requirement found in neither
# fails the install, naming it. Prints what was installed.
set -euo pipefail

dir=${1:-}
python=${PYTHON:-python3}
how="make it with \`make wheelhouse\` and carry it here (usage: bash scripts/offline_install.sh DIR)"
if [[ -z $dir ]]; then
  echo "error: no wheelhouse named; $how" >&2
  exit 2
elif [[ ! -d $dir ]]; then
  echo "error: $dir: no such folder; $how" >&2
  exit 2
elif ! compgen -G "$dir/*.whl" >/dev/null; then
  echo "error: $dir holds no wheels; $how" >&2
  exit 2
fi

before=$(mktemp)
trap 'rm -f "$before"' EXIT
"$python" -m pip list --format=freeze 2>/dev/null | sort >"$before"
"$python" -m pip install --quiet --no-index --find-links "$dir" "$dir"/*.whl
installed=$("$python" -m pip list --format=freeze 2>/dev/null | sort | comm -13 "$before" -)
prefix=$("$python" -c 'import sys; print(sys.prefix)')
if [[ -z $installed ]]; then
  echo "nothing to install into $prefix: every wheel of $dir is installed there already"
else
  echo "installed into $prefix from $dir ($(wc -l <<<"$installed") distributions):"
  sed 's/^/  /' <<<"$installed"
fi
