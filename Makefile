# valkit — the two commands README.md promises, plus the benchmark.
# Binaries land in $CARGO_TARGET_DIR when it is set, as cargo puts them there.
TARGET := $(or $(CARGO_TARGET_DIR),target)
VALKIT := $(TARGET)/debug/valkit
DEMO_HUB := $(TARGET)/debug/examples/demo_hub
DEMO := testdata/demo
OUT := target/demo

.PHONY: demo test bench lint

# The bundled demo, offline. A custom subnet's whole step: sample its batches from local corpora,
# evaluate its six tiny models on them, score the step. Then an SN9 step from stored losses.
demo:
	@echo "building valkit (the first build takes several minutes on 2 cores)..."
	cargo build --locked --quiet --bin valkit --example demo_hub
	@mkdir -p $(OUT)/subnet && rm -f $(OUT)/hub.url
	@# A local hub serving the demo models, and the subnet's metagraph committing to them.
	$(DEMO_HUB) $(OUT)/subnet/metagraph.parquet $(OUT)/hub.url & echo $$! > $(OUT)/hub.pid; \
	for i in $$(seq 100); do [ -s $(OUT)/hub.url ] && break; sleep 0.1; done; \
	HF_ENDPOINT=$$(cat $(OUT)/hub.url) HF_HUB_CACHE=$(OUT)/hf-cache HF_HUB_OFFLINE= \
	    $(VALKIT) fetch-models --competitions $(DEMO)/competitions.toml \
	    --metagraph $(OUT)/subnet/metagraph.parquet --out $(OUT)/subnet/models.parquet; \
	status=$$?; kill $$(cat $(OUT)/hub.pid); exit $$status
	$(VALKIT) sample-batches --competitions $(DEMO)/competitions.toml --competition-id 1 \
	    --seed 42 --tokenizer testdata/tokenizer -o $(OUT)/subnet/batches.parquet
	$(VALKIT) eval-losses --competitions $(DEMO)/competitions.toml --models $(OUT)/subnet/models.parquet \
	    --batches $(OUT)/subnet/batches.parquet --out $(OUT)/subnet/losses.parquet
	$(VALKIT) compute-wins --competitions $(DEMO)/competitions.toml --competition-id 1 \
	    --metagraph $(OUT)/subnet/metagraph.parquet --losses $(OUT)/subnet/losses.parquet \
	    --out-dir $(OUT)/subnet
	$(VALKIT) inspect target/demo/subnet/wins.parquet
	@echo
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
