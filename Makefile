# valkit — the two commands README.md promises, plus the benchmark.
# Binaries land in $CARGO_TARGET_DIR when it is set, as cargo puts them there.
TARGET := $(or $(CARGO_TARGET_DIR),target)
VALKIT := $(TARGET)/debug/valkit
DEMO_HUB := $(TARGET)/debug/examples/demo_hub
OUT := target/demo

.PHONY: demo test test-slurm check-cuda bench lint

# The bundled demo, offline (scripts/demo.sh). Two validator cycles of a custom subnet by
# scripts/run-loop.sh: read the chain (a local subtensor runtime when node is installed), fetch its
# six tiny models from a local hub, sample batches from local corpora, evaluate, score, and set
# the weights. Then an SN9 step re-scored from stored losses, and an HTML report of each.
demo:
	@scripts/setup.sh demo
	@echo "== building valkit and the demo's local hub: the first build compiles several hundred crates"
	@echo "   (roughly 10 minutes on 2 cores; later builds take seconds)"
	cargo build --locked --bin valkit --example demo_hub
	@VALKIT=$(VALKIT) DEMO_HUB=$(DEMO_HUB) scripts/demo.sh $(OUT)

# The whole test suite (what CI runs; scripts/setup.sh first installs what it needs beyond cargo:
# node for the local chain, Chromium for the report, ...), with the one test kept out of `cargo test` for its half minute:
# a 16,384-token reference loss against PyTorch.
test:
	@scripts/setup.sh test
	cargo test --locked --features fault-injection
	cargo test --locked --features fault-injection --lib -- --ignored --exact model::tests::reference_loss_at_16k_tokens_matches_pytorch

# eval-losses as a Slurm job array on a real single-node cluster (installs slurm-wlm and munge with
# apt-get when missing; needs root): 3 shards + compute-wins must equal one host's run byte for
# byte. Kept out of `make test` for its root and apt needs; CI runs it.
test-slurm:
	cargo build --locked --bin valkit --example demo_hub
	VALKIT=$(VALKIT) DEMO_HUB=$(DEMO_HUB) scripts/slurm/test-cluster.sh

# valkit --features cuda, built without a GPU: CUDA 13.4 from NVIDIA's PyPI wheels (cached in
# ~/.cache/valkit-cuda, 1.2 GB) and a stub driver to link against, kernels for sm_90 (H100/H200;
# CUDA_COMPUTE_CAP=NN otherwise), into target/cuda. About 25 minutes cold on 2 cores, so CI
# leaves it out; seconds after that.
check-cuda:
	scripts/check-cuda.sh

bench:
	cargo bench --locked --bench compute_wins
	scripts/bench/tokenize.sh

lint:
	cargo clippy --locked --all-targets -- -D warnings
