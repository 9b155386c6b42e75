# valkit — the two commands README.md promises, plus the benchmark.
VALKIT := target/debug/valkit
DEMO := testdata/demo

.PHONY: demo test bench lint

# The bundled demo, offline. A custom subnet's whole step: sample its batches from local corpora,
# evaluate its six tiny models on them, score the step. Then an SN9 step from stored losses.
demo:
	cargo build --locked --quiet --bin valkit
	$(VALKIT) sample-batches --competitions $(DEMO)/competitions.toml --competition-id 1 \
	    --seed 42 --tokenizer testdata/tokenizer -o target/demo/subnet/batches.parquet
	$(VALKIT) eval-losses --competitions $(DEMO)/competitions.toml --models $(DEMO)/models.parquet \
	    --batches target/demo/subnet/batches.parquet --out target/demo/subnet/losses.parquet
	$(VALKIT) compute-wins --competitions $(DEMO)/competitions.toml --competition-id 1 \
	    --metagraph $(DEMO)/subnet-metagraph.parquet --losses target/demo/subnet/losses.parquet \
	    --out-dir target/demo/subnet
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
