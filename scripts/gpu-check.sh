#!/usr/bin/env bash
# The GPU check in one call, on a machine with an NVIDIA GPU, its driver and Python with
# PyTorch + transformers + PEFT (no Rust toolchain needed): from the repository root,
#
#   OUT=/some/dir scripts/gpu-check.sh [target/device/clsbench.xz]
#
# 1. unpacks the CUDA binary made by tools/build-cuda.sh (or takes an unpacked one) and puts
#    the CUDA 13 libraries of the Python's NVIDIA wheels (site-packages/nvidia/*/lib) and the
#    driver's on LD_LIBRARY_PATH; a library that cannot be found is named and the candle steps
#    are skipped (PyTorch's still run);
# 2. `clsbench gpu-check --device cuda`: forward parity GPU vs CPU on tiny models of every
#    family, every trainable variable's gradient, f16 and bf16 (where the GPU has it), the f16
#    loss scaler;
# 3. `clsbench gpu-perf --device cuda`: ModernBERT-base (full fine-tune) and Qwen2.5-0.5B
#    (LoRA r16) shapes with random weights, batch 1/32/64 at length 128, single-example
#    p50/p95, training step at 32 x 128, peak device memory, in the GPU's `auto` precision; and
#    the seed's decoder recipe in f16 (Qwen2.5-0.5B LoRA, 32 x 128) for its memory;
# 4. the same shapes in PyTorch (scripts/gpu_reference.py) and the comparison table.
#
# Writes under $OUT (default target/gpu-check): gpu-check.md (all tables), gpu-check.json (the
# steps and their exit status), checks.json, candle-perf.json, candle-qwen-f16.json,
# pytorch-perf.json, gpu-check.log. Every step has a time limit (the whole call stays under
# 9 minutes); a failing step is recorded and the others still run. Exit status: 0 when every
# step passed, 1 otherwise.
#
# For trying the script without a GPU (harness/clsbench/tests/it/gpu_check_script.rs does): GPU_CHECK_DEVICE
# (default cuda), GPU_CHECK_PERF_ARGS (extra `gpu-perf` and gpu_reference.py flags, e.g. tiny
# shapes), GPU_CHECK_F16_SHAPE (default qwen2.5-0.5b).
set -Euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${OUT:-$ROOT/target/gpu-check}"
PY="${PYTHON:-python3}"
DEVICE="${GPU_CHECK_DEVICE:-cuda}"
read -r -a PERF_ARGS <<<"${GPU_CHECK_PERF_ARGS:-}"
F16_SHAPE="${GPU_CHECK_F16_SHAPE:-qwen2.5-0.5b}"
mkdir -p "$OUT"
LOG="$OUT/gpu-check.log"
: > "$LOG"
log() { echo "gpu-check: $*" | tee -a "$LOG" >&2; }
STEPS=()
record() { # NAME STATUS SECONDS
  STEPS+=("{\"step\": \"$1\", \"status\": $2, \"seconds\": $3}")
}
run_step() { # NAME TIMEOUT_S CMD... (stdout to the log unless redirected by the caller)
  local name="$1" limit="$2"
  shift 2
  local t0=$SECONDS
  log "step $name (limit ${limit} s): $*"
  timeout --signal=TERM --kill-after=10 "$limit" "$@" 2>>"$LOG"
  local status=$?
  record "$name" "$status" "$((SECONDS - t0))"
  log "step $name: exit $status after $((SECONDS - t0)) s"
  return "$status"
}

log "started $(date -u +%Y-%m-%dT%H:%M:%SZ) in $ROOT, writing $OUT"
{ nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv || echo "nvidia-smi failed"; } >>"$LOG" 2>&1

# --- 1. the binary and its libraries ------------------------------------------------------
PACKED="${1:-$ROOT/target/device/clsbench.xz}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
BIN="$WORK/clsbench"
case "$PACKED" in
  *.xz)
    # Python's lzma is in every CPython; xz(1) may not be installed.
    "$PY" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$PACKED" "$BIN" 2>>"$LOG" ||
      log "cannot unpack $PACKED"
    ;;
  *) cp "$PACKED" "$BIN" 2>>"$LOG" || log "cannot copy $PACKED" ;;
esac
chmod +x "$BIN" 2>/dev/null
# The CUDA libraries of PyTorch's wheels (nvidia/cu13/lib on CUDA 13 wheels, nvidia/*/lib on
# CUDA 12 ones), then the driver's usual homes.
NVLIBS="$("$PY" - <<'EOF' 2>>"$LOG"
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
dirs = sorted({d for r in roots for d in glob.glob(os.path.join(r, "nvidia", "*", "lib"))})
print(":".join(dirs))
EOF
)"
export LD_LIBRARY_PATH="${NVLIBS:+$NVLIBS:}/usr/local/nvidia/lib64:/usr/local/nvidia/lib:/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
log "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
CANDLE_OK=1
if [[ ! -x "$BIN" ]]; then
  log "no runnable binary at $BIN (from $PACKED): build it with tools/build-cuda.sh and carry target/device"
  CANDLE_OK=0
else
  MISSING="$(ldd "$BIN" 2>&1 | awk '/not found/ {print $1}' | tr '\n' ' ')"
  ldd "$BIN" >>"$LOG" 2>&1
  if [[ -n "$MISSING" ]]; then
    log "the binary needs libraries this machine lacks: $MISSING(see target/device/NEEDED and README \"GPU\")"
    CANDLE_OK=0
  elif ! "$BIN" --version >>"$LOG" 2>&1; then
    log "the binary does not start here (other system libraries?); see the log above"
    CANDLE_OK=0
  fi
fi
record "binary" "$((1 - CANDLE_OK))" 0

# --- 2-3. candle on the GPU ---------------------------------------------------------------
if [[ "$CANDLE_OK" == 1 ]]; then
  run_step checks 100 "$BIN" gpu-check --device "$DEVICE" --out "$OUT/checks.json" >"$OUT/checks.md"
  run_step candle-perf 200 "$BIN" gpu-perf --device "$DEVICE" "${PERF_ARGS[@]}" --out "$OUT/candle-perf.json" >"$OUT/candle-perf.md"
  run_step candle-qwen-f16 60 "$BIN" gpu-perf --device "$DEVICE" "${PERF_ARGS[@]}" --shapes "$F16_SHAPE" --dtype f16 \
    --skip-inference --out "$OUT/candle-qwen-f16.json" >>"$OUT/candle-perf.md"
fi

# --- 4. PyTorch on the same shapes, and the comparison -------------------------------------
run_step pytorch-perf 200 "$PY" "$ROOT/scripts/gpu_reference.py" --device "$DEVICE" "${PERF_ARGS[@]}" \
  --f16-decoder-shape "$F16_SHAPE" --out "$OUT/pytorch-perf.json" >>"$LOG"
{
  echo "# GPU check ($(date -u +%Y-%m-%d))"
  echo
  nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv 2>/dev/null | sed 's/^/    /'
  echo
  [[ -f "$OUT/checks.md" ]] && cat "$OUT/checks.md"
  echo
  echo "## clsbench (candle) on the GPU"
  echo
  [[ -f "$OUT/candle-perf.md" ]] && cat "$OUT/candle-perf.md"
  echo
  "$PY" "$ROOT/scripts/gpu_reference.py" --compare "$OUT/candle-perf.json" "$OUT/pytorch-perf.json" \
    --candle-f16 "$OUT/candle-qwen-f16.json" 2>>"$LOG" || echo "(no comparison: a perf step failed, see gpu-check.log)"
} >"$OUT/gpu-check.md"
rm -f "$OUT/checks.md" "$OUT/candle-perf.md"

FAILED=0
for s in "${STEPS[@]}"; do
  [[ "$s" == *'"status": 0,'* ]] || FAILED=1
done
{
  echo "{\"finished\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\", \"wall_s\": $SECONDS, \"steps\": ["
  (IFS=,; echo "${STEPS[*]}")
  echo "]}"
} >"$OUT/gpu-check.json"
log "done in $SECONDS s; $([[ $FAILED == 0 ]] && echo "every step passed" || echo "some step failed"): $OUT/gpu-check.md"
exit "$FAILED"
