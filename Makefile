# valkit — the two commands README.md promises, plus the benchmark.
# Binaries land in $CARGO_TARGET_DIR when it is set, as cargo puts them there.
TARGET := $(or $(CARGO_TARGET_DIR),target)
VALKIT := $(TARGET)/debug/valkit
DEMO_HUB := $(TARGET)/debug/examples/demo_hub
DEMO := testdata/demo
OUT := target/demo

.PHONY: demo test bench lint

# The bundled demo, offline. Two validator cycles of a custom subnet by scripts/run-loop.sh: read
# the chain (a local subtensor runtime when node is installed), fetch its six tiny models from a
# local hub, sample batches from local corpora, evaluate, score, and set the weights. Then an SN9
# step re-scored from stored losses.
demo:
	@echo "building valkit (the first build takes several minutes on 2 cores)..."
	cargo build --locked --quiet --bin valkit --example demo_hub
	VALKIT=$(VALKIT) DEMO_HUB=$(DEMO_HUB) scripts/demo.sh $(OUT)
	@echo
	@echo "== an SN9 step re-scored offline from stored losses"
	$(VALKIT) compute-wins --profile sn9 --competition-id 4 \
	    --metagraph $(DEMO)/metagraph.parquet --losses $(DEMO)/losses.parquet \
	    --tracker $(DEMO)/tracker.parquet --out-dir target/demo
	$(VALKIT) inspect target/demo/wins.parquet
	@echo
	$(VALKIT) inspect target/demo/weights.parquet

# The whole test suite (what CI runs).
test:
	cargo test --locked

bench:
	cargo bench --locked --bench compute_wins
	scripts/bench/tokenize.sh

lint:
	cargo clippy --locked --all-targets -- -D warnings
