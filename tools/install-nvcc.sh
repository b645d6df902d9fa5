#!/usr/bin/env bash
# Install nvcc and the CUDA headers it needs from PyPI wheels (no system CUDA toolkit, no GPU
# needed), into one tree that looks like a CUDA install:
#
#   tools/install-nvcc.sh [DEST]      DEST defaults to target/cuda-toolkit
#
# Prints the environment to use (eval "$(tools/install-nvcc.sh)"): PATH with nvcc, CUDA_ROOT,
# CUDA_PATH. Re-running is cheap when DEST/.stamp matches. Needs python3 with pip and PyPI.
set -Eeuo pipefail
DEST="${1:-target/cuda-toolkit}"
PY="${PYTHON:-python3}"
# One CUDA release for all wheels (nvcc must match its nvvm and headers).
CUDA_WHEELS=(nvidia-cuda-nvcc==13.0.* nvidia-nvvm==13.0.* nvidia-cuda-runtime==13.0.* nvidia-cuda-crt==13.0.* nvidia-cuda-cccl==13.0.*)
STAMP="${CUDA_WHEELS[*]}"
if [[ ! -f "$DEST/.stamp" || "$(cat "$DEST/.stamp")" != "$STAMP" ]]; then
  rm -rf "$DEST"
  mkdir -p "$DEST"
  PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
    "$PY" -m pip install --quiet --no-deps --target "$DEST/site" "${CUDA_WHEELS[@]}" >&2
  echo "$STAMP" > "$DEST/.stamp"
fi
ROOT="$(cd "$DEST/site/nvidia" && ls -d cu1*/ | head -1)"
ROOT="$(cd "$DEST/site/nvidia/$ROOT" && pwd)"
[[ -x "$ROOT/bin/nvcc" ]] || { echo "install-nvcc: no nvcc under $ROOT/bin" >&2; exit 1; }
# nvcc looks for ../nvvm and ../include relative to itself; cudarc and bindgen_cuda read these.
echo "export PATH=\"$ROOT/bin:\$PATH\" CUDA_ROOT=\"$ROOT\" CUDA_PATH=\"$ROOT\" CUDA_TOOLKIT_ROOT_DIR=\"$ROOT\""
