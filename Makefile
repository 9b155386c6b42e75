# valkit — the two commands README.md promises, plus the benchmark.
VALKIT := target/debug/valkit
DEMO := testdata/demo

.PHONY: demo test bench lint

# One SN9 competition step on the bundled demo tables: scores, weights, next tracker.
demo:
	cargo build --locked --quiet --bin valkit
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

lint:
	cargo clippy --locked --all-targets -- -D warnings
