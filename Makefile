# clsbench — the two commands of the README:
#   make bench   runs the default suite on real CFPB data (CPU, minutes) and writes results/
#   make test    runs every test (no network)
#   make compare fresh run of $(SUITE) vs the committed reference for this machine; exit 1 on a regression
# Benchmarks are built for this CPU (target-cpu=native) in their own target dir so the flag is
# never baked into binaries meant for other machines.

SUITE ?= suites/default.toml
CARGO ?= cargo
NATIVE_TARGET ?= target/native
RUN_ARGS ?=

.PHONY: bench test build native check-cuda criterion clean-results describe compare promote

build:
	$(CARGO) build --release -p clsbench

native:
	RUSTFLAGS="-C target-cpu=native" CARGO_TARGET_DIR=$(NATIVE_TARGET) $(CARGO) build --release -p clsbench

bench: native
	$(NATIVE_TARGET)/release/clsbench run $(SUITE) $(RUN_ARGS)

describe: build
	target/release/clsbench describe $(SUITE)

test:
	$(CARGO) test --workspace --all-targets

criterion:
	RUSTFLAGS="-C target-cpu=native" CARGO_TARGET_DIR=$(NATIVE_TARGET) $(CARGO) bench -p clsbench

# Compiles the CUDA path without a GPU (needs nvcc; see README "GPU"). Slow: ~20 min on 2 cores.
check-cuda:
	$(CARGO) check -p clsbench --features cuda

# Regression check against the committed reference for this machine and suite,
# results/<hardware-slug>/<suite>/ (see results/README.md): a fresh run (nothing reused) into
# $(COMPARE_DIR), then `clsbench compare --reference`. Exit 1 on a quality or speed regression.
COMPARE_DIR ?= target/compare-run
compare: native
	rm -rf $(COMPARE_DIR)
	$(NATIVE_TARGET)/release/clsbench run $(SUITE) --output-dir $(COMPARE_DIR) --run-id fresh $(RUN_ARGS)
	$(NATIVE_TARGET)/release/clsbench compare --reference $(COMPARE_DIR)/*/fresh

# Make the last `make compare` run the committed reference for this machine (then commit it).
promote:
	$(NATIVE_TARGET)/release/clsbench promote $(COMPARE_DIR)/*/fresh $(PROMOTE_ARGS)
