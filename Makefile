# valkit — the two commands README.md promises, plus the benchmark.
VALKIT := target/debug/valkit
DEMO := testdata/demo

.PHONY: demo test bench lint

# The bundled demo, offline: sample a custom subnet's batches from local corpora, then score
# one SN9 competition step from stored losses (wins, weights, next tracker).
demo:
	cargo build --locked --quiet --bin valkit
	$(VALKIT) sample-batches --competitions $(DEMO)/competitions.toml --competition-id 1 \
	    --seed 42 --tokenizer testdata/tokenizer -o target/demo/batches.parquet
	$(VALKIT) inspect target/demo/batches.parquet --limit 4
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
