#!/bin/sh
# The GPU benchmark as one command for one short GPU window (docs/benchmarks.md):
#   scripts/gpu-bench.sh OUTPUT_DIR [python -m reelforge_bench options]
# Runs on a fresh machine whose python3 has torch and no network: what else it needs installs from
# the wheels in .whl/ beside this checkout (`make bench-wheels` downloads them, about 23 MB), the
# project's own packages are read from the checkout. Writes bench.json and bench.md into OUTPUT_DIR.
set -eu
OUT=${1:?usage: scripts/gpu-bench.sh OUTPUT_DIR [options]}
shift
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
if ls "$ROOT"/.whl/*.whl >/dev/null 2>&1; then
    SITE=${TMPDIR:-/tmp}/reelforge-bench-site
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$ROOT"/.whl/*.whl
    PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$ROOT/shared/src:$ROOT/services/generator/src${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
exec "$PY" -m reelforge_bench --out "$OUT" "$@"
