# Every target sets itself up on a fresh machine: it creates .venv and installs the
# project with its pinned dependencies (requirements.lock) first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

DEMO_START ?= 2024-01-02
DEMO_END ?= 2024-03-28

.PHONY: setup test test-fast lint demo bench clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test,lint]'
	touch $(STAMP)

setup: $(STAMP)

# everything: the unit tier, then the end-to-end tier (what CI runs)
test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit tests/e2e

# the unit tier only, for the edit-test loop (seconds)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit

lint: $(STAMP)
	$(BIN)/ruff check dbn_backfill tests bench
	$(BIN)/ruff format --check dbn_backfill tests bench
	$(BIN)/snakefmt --check dbn_backfill/workflow/Snakefile dbn_backfill/workflow/rules
	$(BIN)/snakemake --lint --config dbn=tests/data/es-fixture.ohlcv-1m.dbn.zst db=/tmp/dbn-backfill-lint.duckdb symbol=ES \
		start=2020-12-28 end=2020-12-28 checkpoint=/tmp/dbn-backfill-lint-ckpt
	$(BIN)/snakemake -s workflow/Snakefile --directory .test --lint
	$(BIN)/mypy
	$(BIN)/lint-imports

demo: $(STAMP)
	$(BIN)/dbn-backfill synth --out demo/dbn --start 2024-01-01 --end 2024-03-31 --seed 7 --layout daily
	$(BIN)/dbn-backfill --db demo/futures.duckdb --dbn demo/dbn --symbol MGC,GC \
		--start $(DEMO_START) --end $(DEMO_END) --workers 2 --chunk-days 5 \
		--checkpoint demo/checkpoints --workdir demo/work
	$(BIN)/dbn-backfill show --db demo/futures.duckdb
	$(BIN)/dbn-backfill status --db demo/futures.duckdb --checkpoint demo/checkpoints --workdir demo/work
	$(BIN)/dbn-backfill report --db demo/futures.duckdb --checkpoint demo/checkpoints --workdir demo/work \
		--out demo/report.html
	@echo "The report: $(CURDIR)/demo/report.html (open it in a browser)"

bench: $(STAMP)
	$(BIN)/python -m bench.run

clean:
	rm -rf demo .snakemake results logs
