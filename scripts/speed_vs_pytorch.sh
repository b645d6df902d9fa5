#!/usr/bin/env bash
# `make speed-vs-pytorch`: candle (`cargo bench --bench models`, built once) and PyTorch +
# transformers + PEFT (scripts/compare_pytorch.py) on the same rows, each row in its own process
# under `/usr/bin/time -v` so its peak RSS is that row's alone, then the table of ratios
# (scripts/speed_ratios.py). Run it on an idle machine; rows alternate candle / PyTorch so that
# drift in the machine's speed hits both sides alike.
#
#   scripts/speed_vs_pytorch.sh OUT_DIR [ROW ...]
#
# A row is MODEL:WHAT:BATCH:LENGTH[:ckpt] with WHAT = inference | lora | full; the default rows
# are the training-efficiency issue's. Qwen rows are skipped (said) without the mirror's Qwen
# (fetch-models.sh --with-qwen). Environment: PYTHON (default python3), BENCH (a prebuilt
# bench binary), CLSBENCH_MODEL_DIR (the mirror), STEPS (timed steps per row, default 3).
set -euo pipefail
out=${1:?usage: speed_vs_pytorch.sh OUT_DIR [ROW ...]}
shift
rows=("$@")
if [[ ${#rows[@]} -eq 0 ]]; then
  rows=(minilm:inference:32:128 smollm2:inference:32:128
        minilm:full:32:128 minilm:full:32:128:ckpt
        smollm2:lora:16:128 smollm2:lora:16:128:ckpt
        smollm2:lora:32:128 smollm2:lora:32:128:ckpt
        qwen:lora:8:128 qwen:lora:8:128:ckpt)
fi
PYTHON=${PYTHON:-python3}
STEPS=${STEPS:-3}
mirror=${CLSBENCH_MODEL_DIR:-$HOME/.cache/model-mirror}
here=$(cd "$(dirname "$0")" && pwd)
[[ -x /usr/bin/time ]] || { echo "speed_vs_pytorch: /usr/bin/time is missing (apt-get install time)" >&2; exit 4; }
if [[ -z ${BENCH:-} ]]; then
  BENCH=$(cargo bench -p clsbench --bench models --no-run --message-format=json 2>/dev/null \
    | "$PYTHON" -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "models" and m.get("executable"):
        print(m["executable"])' | tail -1)
fi
[[ -x $BENCH ]] || { echo "speed_vs_pytorch: no bench binary (cargo bench --bench models --no-run failed?)" >&2; exit 4; }
mkdir -p "$out"
: > "$out/speed-candle.jsonl"
: > "$out/speed-pytorch.jsonl"

declare -A dirs=([minilm]=all-MiniLM-L6-v2 [smollm2]=SmolLM2-135M-Instruct [qwen]=Qwen2.5-Coder-0.5B-Instruct)

# run SIDE FILE CMD...: the command's JSON lines, each with the process's peak RSS added.
run() {
  local side=$1 file=$2; shift 2
  local log; log=$(mktemp)
  if ! /usr/bin/time -v -o "$log.time" "$@" > "$log" 2> "$log.err"; then
    echo "speed_vs_pytorch: $side failed: $*" >&2; tail -5 "$log.err" >&2
    rm -f "$log" "$log.time" "$log.err"; return 1
  fi
  local rss_kib; rss_kib=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$log.time")
  "$PYTHON" -c 'import json,sys
rss = int(sys.argv[1]) / 1024
for l in open(sys.argv[2]):
    if l.startswith("{"):
        r = json.loads(l); r["peak_rss_mib"] = rss; print(json.dumps(r))' "$rss_kib" "$log" >> "$file"
  rm -f "$log" "$log.time" "$log.err"
}

for row in "${rows[@]}"; do
  IFS=: read -r model what batch length ckpt <<< "$row"
  if [[ ! -f $mirror/${dirs[$model]}/config.json ]]; then
    echo "speed_vs_pytorch: SKIPPED $row: $mirror/${dirs[$model]} not found (fetch-models.sh --with-qwen)" >&2
    continue
  fi
  args=(--docs 256 --models "$model" --batch "$batch" --max-length "$length")
  if [[ $what == inference ]]; then
    args+=(--steps 0)
  else
    args+=(--steps "$STEPS" --modes "$what" --skip-inference)
    [[ ${ckpt:-} == ckpt ]] && args+=(--gradient-checkpointing)
  fi
  echo "speed_vs_pytorch: $row" >&2
  run candle "$out/speed-candle.jsonl" "$BENCH" --bench "${args[@]}"
  run pytorch "$out/speed-pytorch.jsonl" "$PYTHON" "$here/compare_pytorch.py" "${args[@]}"
done
"$PYTHON" "$here/speed_ratios.py" "$out/speed-candle.jsonl" "$out/speed-pytorch.jsonl"
