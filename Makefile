PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench bench-plot fuzz docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/quickstart.py

lint: $(STAMP)
	$(BIN)/ruff check lensify tests benchmarks examples
	$(BIN)/ruff format --check lensify tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck pytest docs

fuzz: $(STAMP)
	LENSIFY_FUZZ_EXAMPLES=5000 $(BIN)/pytest -q tests/test_fuzz.py --hypothesis-show-statistics

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# The site, built as CI builds it: a broken page or reference is an error.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# Re-run the benchmarks and redraw the plot on the Benchmarks page (commit the PNG).
bench-plot: $(STAMP)
	$(BIN)/python -m benchmarks --json docs/assets/benchmarks.json
	$(BIN)/python docs/scripts/plot_benchmarks.py docs/assets/benchmarks.json --out docs/assets/benchmarks.png

clean:
	rm -rf $(VENV)
