#!/usr/bin/env bash
# Build the CUDA clsbench binary on a machine without a GPU and pack it for one that has one:
#
#   tools/build-cuda.sh            (or `make build-cuda`)
#
# 1. nvcc, the CUDA runtime headers and the libraries the binary links against (cuBLAS,
#    cuRAND, NVRTC) from PyPI wheels, and a stub libcuda.so (tools/install-nvcc.sh --with-libs);
# 2. `cargo build --release -p clsbench --features cuda` with CUDA_COMPUTE_CAP (default 75:
#    candle's kernels become PTX for compute capability 7.5, the T4's, which the driver
#    compiles at load time for newer cards) into its own CARGO_TARGET_DIR (target/cuda-release);
# 3. strip it, compress it with xz into target/device/clsbench.xz (xz, not zstd: the GPU host
#    may lack a zstd tool, and Python's standard lzma module unpacks xz anywhere) with the list
#    of shared libraries it needs (target/device/NEEDED) and a BUILD stamp, and print the size.
#
# At run time the binary needs the NVIDIA driver (libcuda.so.1) and the CUDA 13 libraries
# libcudart.so.13, libcublas.so.13, libcublasLt.so.13, libcurand.so.10, libnvrtc.so.13: on a
# host with PyTorch's cu13 wheels they are under site-packages/nvidia/cu13/lib
# (scripts/gpu-check.sh puts them on LD_LIBRARY_PATH). See README "GPU".
set -Eeuo pipefail
cd "$(dirname "$0")/.."
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-75}"
export CARGO_TARGET_DIR="${CUDA_TARGET_DIR:-target/cuda-release}"
OUT_DIR="${DEVICE_DIR:-target/device}"
# What may travel with a device call is 64 MiB in all; leave room for the working tree.
MAX_BYTES="${MAX_DEVICE_BYTES:-$((40 * 1024 * 1024))}"
start=$(date +%s)
eval "$(bash tools/install-nvcc.sh --with-libs)"
echo "build-cuda: $(nvcc --version | tail -2 | head -1); CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP; target dir $CARGO_TARGET_DIR" >&2
cargo build --release -p clsbench --features cuda
bin="$CARGO_TARGET_DIR/release/clsbench"
mkdir -p "$OUT_DIR"
strip -o "$OUT_DIR/clsbench" "$bin"
readelf -d "$OUT_DIR/clsbench" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' > "$OUT_DIR/NEEDED"
xz -9e -T0 -f -c "$OUT_DIR/clsbench" > "$OUT_DIR/clsbench.xz"
stripped=$(stat -c %s "$OUT_DIR/clsbench")
rm -f "$OUT_DIR/clsbench"
size=$(stat -c %s "$OUT_DIR/clsbench.xz")
{
  echo "git_rev=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo -dirty)"
  echo "cuda_compute_cap=$CUDA_COMPUTE_CAP"
  echo "nvcc=$(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "stripped_bytes=$stripped"
  echo "compressed_bytes=$size"
} > "$OUT_DIR/BUILD"
echo "build-cuda: $OUT_DIR/clsbench.xz: $size bytes (stripped binary $stripped bytes) ($((size / 1024 / 1024)) MiB) after $(($(date +%s) - start)) s; it needs: $(tr '\n' ' ' < "$OUT_DIR/NEEDED")"
if (( size > MAX_BYTES )); then
  echo "build-cuda: $size bytes is over the $MAX_BYTES-byte budget for what travels to the device" >&2
  exit 1
fi
