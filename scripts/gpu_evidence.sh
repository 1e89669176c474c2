#!/usr/bin/env bash
# Every GPU figure in one command, on a GPU machine without internet (about 8 min on one H100):
#   bash scripts/gpu_evidence.sh OUT_DIR [--dry-run] [--datasets DIR] [--cifar-root DIR] [--work DIR]
# Installs what the machine lacks from wheelhouse/ (make wheelhouse) into its Python, the peers
# from wheelhouse-bench/ (make wheelhouse-bench) into a folder of their own, then runs
# scripts/gpu_evidence.py, which writes OUT_DIR/report.md and OUT_DIR/evidence.json.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ $# -ge 1 ] || { echo "usage: bash scripts/gpu_evidence.sh OUT_DIR [--dry-run] [--datasets DIR] [--cifar-root DIR]" >&2; exit 2; }
WORK=/tmp/selfsup-gpu-evidence
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do [ "${args[$i]}" = "--work" ] && WORK=${args[$((i + 1))]}; done
mkdir -p "$WORK"
# The scripts import the installed selfsup (wheelhouse/ holds its wheel): checked without the current
# folder on sys.path, where the repository's own selfsup/ would pass for it.
if ! "$PY" -c "import os, sys; sys.path = [p for p in sys.path if p not in ('', '.', os.getcwd())]; import hydra, omegaconf, pydantic, timm, lightning, selfsup" 2>/dev/null; then
    [ -d wheelhouse ] || { echo "error: $PY lacks selfsup or its dependencies and there is no wheelhouse/: run 'make wheelhouse' where pip works and carry wheelhouse/ here" >&2; exit 2; }
    PYTHON="$PY" bash scripts/offline_install.sh wheelhouse
fi
extra=()
if [ -d wheelhouse-bench ] && compgen -G "wheelhouse-bench/*.whl" >/dev/null; then
    if [ ! -f "$WORK/bench-site/.installed" ]; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$WORK/bench-site" wheelhouse-bench/*.whl
        touch "$WORK/bench-site/.installed"
    fi
    extra=(--bench-site "$WORK/bench-site")
fi
exec "$PY" scripts/gpu_evidence.py "$@" "${extra[@]}"
