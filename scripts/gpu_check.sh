#!/usr/bin/env bash
# GPU check: `pytest -m gpu` and the four GPU benches on a CUDA machine, within 8 minutes, with a summary.
#
#   scripts/gpu_check.sh [OUT_DIR]        # default OUT_DIR: $OUT if set, else ./gpu-check
#
# The machine needs Python >= 3.10 with a CUDA build of PyTorch. Whatever else the workbench and its tests
# import and that Python lacks is installed first from the local wheel folder .whl/ (no network needed):
# fill it beforehand on a machine with network access, for the GPU machine's Python and platform, e.g.
#
#   pip download -d .whl --python-version 3.11 --platform manylinux2014_x86_64 --only-binary=:all: \
#       -r <(python scripts/gpu_check_requirements.py)       # everything but torch
#
# Writes OUT_DIR/summary.md (GPU, versions, each step's result, time and last line), one log per step and the
# benches' figures as JSON. Exit status: 0 when every step passed.
# GPU_CHECK_SMOKE=1 runs the same steps on a CPU with tiny shapes (checks the script, measures nothing).
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PY="${PYTHON:-python3}"
OUT_DIR="${1:-${OUT:-$REPO/gpu-check}}"
SMOKE="${GPU_CHECK_SMOKE:-0}"
BUDGET_S="${GPU_CHECK_BUDGET_S:-$([ "$SMOKE" = 1 ] && echo 3600 || echo 470)}"
mkdir -p "$OUT_DIR"
START=$(date +%s)
SUMMARY="$OUT_DIR/summary.md"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export IWB_HOME="${IWB_HOME:-$OUT_DIR/iwb-home}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
FAILED=0

left() { echo $(( BUDGET_S - ($(date +%s) - START) )); }

if [ "$SMOKE" = 1 ]; then  # tiny shapes on the CPU: the benches' own smoke arguments
  A_TRAIN=(--device cpu --d-in 64 --d-sae 1024 --k 8 --batch 256 --steps 3)
  A_PATCH=(--device cpu --shape tiny --rounds 5)
  A_PROV=(--device cpu --shape tiny --d-sae 512 --layers 0,1,2 --repeats 2)
  A_ANALYSIS=(--device cpu --shape tiny --d-sae 1024 --tokens 2000 --batch-contexts 16)
else
  A_TRAIN=() A_PATCH=() A_PROV=() A_ANALYSIS=(--tokens "${GPU_CHECK_ANALYSIS_TOKENS:-1000000}")
fi

# 1. the machine: CUDA PyTorch is required, the rest comes from .whl/ when missing
if [ "$SMOKE" != 1 ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "no CUDA PyTorch for $PY: install a CUDA build of torch on this machine first" | tee "$SUMMARY"
  exit 2
fi
MISSING=$("$PY" scripts/gpu_check_requirements.py --missing)
if [ -n "$MISSING" ]; then
  echo "installing from .whl/: $MISSING"
  if [ ! -d .whl ]; then
    echo "missing packages ($MISSING) and no .whl/ folder: see the top of this script" | tee "$SUMMARY"
    exit 2
  fi
  # shellcheck disable=SC2086
  "$PY" -m pip install -q --no-index --find-links .whl $MISSING > "$OUT_DIR/install.log" 2>&1 \
    || { echo "pip install from .whl/ failed: see $OUT_DIR/install.log" | tee "$SUMMARY"; exit 2; }
fi

{
  echo "# GPU check"
  echo
  "$PY" - <<'EOF'
import platform, torch, transformers
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"- GPU: {torch.cuda.get_device_name(0)} ({p.total_memory / 2**30:.0f} GiB), {torch.cuda.device_count()} visible")
else:
    print(f"- no GPU: smoke run on the CPU ({platform.machine()}), nothing measured")
print(f"- torch {torch.__version__} (CUDA {torch.version.cuda}), transformers {transformers.__version__}, "
      f"Python {platform.python_version()}")
EOF
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (modified)')"
  echo
  echo "| step | result | seconds | last line |"
  echo "| --- | --- | --- | --- |"
} > "$SUMMARY"

# 2. the steps, each within its share of what is left of the budget
step() {  # step NAME SECONDS COMMAND...
  local name="$1" want="$2"; shift 2
  [ "$SMOKE" = 1 ] && want=$(( want * 6 ))  # a CPU is slower at everything; the budget still bounds the total
  local budget; budget=$(left)
  [ "$want" -lt "$budget" ] && budget="$want"
  if [ "$budget" -lt 20 ]; then
    echo "| $name | not run (out of time) | 0 | |" >> "$SUMMARY"; FAILED=1; return
  fi
  local t0; t0=$(date +%s)
  timeout --kill-after=10 "$budget" "$@" > "$OUT_DIR/$name.log" 2>&1
  local rc=$?
  local dt=$(( $(date +%s) - t0 ))
  local last; last=$(grep -v '^\s*$' "$OUT_DIR/$name.log" | tail -n 1 | cut -c1-200 | tr '|' '/')
  local result="passed"
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then result="timed out after ${budget} s"; FAILED=1
  elif [ $rc -ne 0 ]; then result="failed (exit $rc)"; FAILED=1; fi
  echo "| $name | $result | $dt | $last |" >> "$SUMMARY"
  echo "$name: $result in ${dt} s — $last"
}

step pytest-gpu 180 "$PY" -m pytest -q -p no:cacheprovider -m gpu -rs tests/gpu --timeout 170 \
  --junitxml "$OUT_DIR/pytest-gpu.xml"
step gpu_sae_training 45 "$PY" bench/gpu_sae_training.py "${A_TRAIN[@]}" --json "$OUT_DIR/gpu_sae_training.json"
step gpu_patch_latency 55 "$PY" bench/gpu_patch_latency.py "${A_PATCH[@]}" --json "$OUT_DIR/gpu_patch_latency.json"
step gpu_provenance 55 "$PY" bench/gpu_provenance.py "${A_PROV[@]}" --json "$OUT_DIR/gpu_provenance.json"
step gpu_feature_analysis 135 "$PY" bench/gpu_feature_analysis.py "${A_ANALYSIS[@]}" \
  --json "$OUT_DIR/gpu_feature_analysis.json"

echo >> "$SUMMARY"
echo "Total: $(( $(date +%s) - START )) s of a ${BUDGET_S} s budget. Logs and JSON figures: $OUT_DIR" >> "$SUMMARY"
cat "$SUMMARY"
exit $FAILED
