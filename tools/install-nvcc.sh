#!/usr/bin/env bash
# Install nvcc and the CUDA headers it needs from PyPI wheels (no system CUDA toolkit, no GPU
# needed), into one tree that looks like a CUDA install:
#
#   tools/install-nvcc.sh [--with-libs] [DEST]      DEST defaults to target/cuda-toolkit
#
# Prints the environment to use (eval "$(tools/install-nvcc.sh)"): PATH with nvcc, CUDA_ROOT,
# CUDA_PATH. Re-running is cheap when the stamps match. Needs python3 with pip and PyPI.
#
# --with-libs (for linking, tools/build-cuda.sh): candle enables cudarc's `dynamic-linking`,
# so a CUDA binary is linked with -lcuda -lcudart -lnvrtc -lcurand -lcublas -lcublasLt. This
# also installs the cuBLAS, cuRAND and NVRTC wheels of the same CUDA release into DEST/libs,
# and builds DEST/link/lib: `libX.so` and `libX.so.N` links to those libraries, and
# lib/stubs/libcuda.so, a stub of the driver library made here (no wheel carries libcuda: it
# comes with the NVIDIA driver, on the GPU host only). The stub exports every driver function
# cudarc declares and is only linked against, never loaded: its soname is libcuda.so.1, so the
# binary loads the driver's real library at run time. The extra output exports CUDA_HOME (the
# link tree, searched by cudarc's build script) and LD_LIBRARY_PATH (so the linker resolves the
# libraries' own dependencies).
set -Eeuo pipefail
WITH_LIBS=0
if [[ "${1:-}" == "--with-libs" ]]; then
  WITH_LIBS=1
  shift
fi
DEST="${1:-target/cuda-toolkit}"
PY="${PYTHON:-python3}"
pip_install() { # TARGET WHEEL...
  local target="$1"
  shift
  PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
    "$PY" -m pip install --quiet --no-deps --target "$target" "$@" >&2
}
# One CUDA release for all wheels (nvcc must match its nvvm and headers).
CUDA_WHEELS=(nvidia-cuda-nvcc==13.0.* nvidia-nvvm==13.0.* nvidia-cuda-runtime==13.0.* nvidia-cuda-crt==13.0.* nvidia-cuda-cccl==13.0.*)
STAMP="${CUDA_WHEELS[*]}"
if [[ ! -f "$DEST/.stamp" || "$(cat "$DEST/.stamp")" != "$STAMP" ]]; then
  rm -rf "$DEST"
  mkdir -p "$DEST"
  pip_install "$DEST/site" "${CUDA_WHEELS[@]}"
  echo "$STAMP" > "$DEST/.stamp"
fi
ROOT="$(cd "$DEST/site/nvidia" && ls -d cu1*/ | head -1)"
ROOT="$(cd "$DEST/site/nvidia/$ROOT" && pwd)"
[[ -x "$ROOT/bin/nvcc" ]] || { echo "install-nvcc: no nvcc under $ROOT/bin" >&2; exit 1; }
# nvcc looks for ../nvvm and ../include relative to itself; cudarc and bindgen_cuda read these.
ENV_LINE="export PATH=\"$ROOT/bin:\$PATH\" CUDA_ROOT=\"$ROOT\" CUDA_PATH=\"$ROOT\" CUDA_TOOLKIT_ROOT_DIR=\"$ROOT\""

if [[ "$WITH_LIBS" == 1 ]]; then
  # CUDA 13.0's cuBLAS is 13.0.x, its cuRAND 10.4.0.x, its NVRTC 13.0.x (sonames libcublas.so.13,
  # libcublasLt.so.13, libcurand.so.10, libnvrtc.so.13: any 13.x wheel on the GPU host has them).
  LIB_WHEELS=(nvidia-cublas==13.0.* nvidia-curand==10.4.0.* nvidia-cuda-nvrtc==13.0.*)
  LIB_STAMP="${LIB_WHEELS[*]}"
  if [[ ! -f "$DEST/.stamp-libs" || "$(cat "$DEST/.stamp-libs")" != "$LIB_STAMP" ]]; then
    rm -rf "$DEST/libs"
    pip_install "$DEST/libs" "${LIB_WHEELS[@]}"
    echo "$LIB_STAMP" > "$DEST/.stamp-libs"
  fi
  # The driver functions cudarc declares, from the cudarc source cargo fetched (Cargo.lock's
  # version), so the stub covers whatever candle calls.
  CUDARC_VERSION="$(awk '/^name = "cudarc"$/ {getline; gsub(/"/, "", $3); print $3; exit}' Cargo.lock)"
  [[ -n "$CUDARC_VERSION" ]] || { echo "install-nvcc: no cudarc in Cargo.lock (run from the repository root)" >&2; exit 1; }
  cargo fetch --quiet >&2
  shopt -s nullglob
  SYS_CANDIDATES=("${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"cudarc-$CUDARC_VERSION"/src/driver/sys/mod.rs)
  shopt -u nullglob
  SYS_RS="${SYS_CANDIDATES[0]:-}"
  [[ -f "$SYS_RS" ]] || { echo "install-nvcc: cudarc $CUDARC_VERSION source not found under ${CARGO_HOME:-$HOME/.cargo}/registry" >&2; exit 1; }
  LINK="$DEST/link/lib"
  rm -rf "$DEST/link"
  mkdir -p "$LINK/stubs"
  for so in "$DEST"/libs/nvidia/cu13/lib/lib*.so.* "$ROOT"/lib/libcudart.so.*; do
    name="$(basename "$so")"
    ln -sf "$(cd "$(dirname "$so")" && pwd)/$name" "$LINK/$name"
    ln -sf "$name" "$LINK/${name%%.so.*}.so"
  done
  for lib in cudart nvrtc curand cublas cublasLt; do
    [[ -e "$LINK/lib$lib.so" ]] || { echo "install-nvcc: lib$lib.so missing after installing ${LIB_WHEELS[*]}" >&2; exit 1; }
  done
  grep -oE '^pub unsafe fn cu[A-Za-z0-9_]+' "$SYS_RS" | awk '{print $4}' | sort -u |
    awk '{printf "int %s(void) { return 999; /* CUDA_ERROR_UNKNOWN: never called, see install-nvcc.sh */ }\n", $1}' \
      > "$DEST/link/libcuda_stub.c"
  "${CC:-cc}" -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$LINK/stubs/libcuda.so" "$DEST/link/libcuda_stub.c"
  LINK_ROOT="$(cd "$DEST/link" && pwd)"
  ENV_LINE="$ENV_LINE CUDA_HOME=\"$LINK_ROOT\" LD_LIBRARY_PATH=\"$LINK_ROOT/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\""
fi
echo "$ENV_LINE"
