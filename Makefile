PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck check-layers pytest bench bench-plot fuzz docs wheel clean

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

# The registry boundary: only lensify/_tree.py calls a pytree registry (JAX's or
# optree's). Doctest lines (>>> and ...) may, as users do.
REGISTRY_CALL := (^|[^A-Za-z0-9_.])(jax[.]tree_util|jtu|jax[.]tree|optree)[.][A-Za-z_]+[(]
check-layers:
	@calls=$$(grep -rnE '$(REGISTRY_CALL)' lensify --include='*.py' \
		| grep -v '^lensify/_tree[.]py:' \
		| grep -vE '^[^:]+:[0-9]+:[[:space:]]*(>>>|[.][.][.])'); \
	if [ -n "$$calls" ]; then \
		echo "$$calls"; \
		echo "check-layers: only lensify/_tree.py may call a pytree registry; use lensify._tree"; \
		exit 1; \
	fi

# Two at a time (pytest-xdist), then alone the tests that start processes with many CPU
# devices (marked serial in tests/conftest.py): together, the whole suite.
pytest: $(STAMP)
	$(BIN)/pytest -q -n 2 -m "not serial"
	$(BIN)/pytest -q -m serial

test: check-layers lint typecheck pytest docs wheel

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

# The wheel a user installs: built from the repository, installed with its runtime
# dependencies only (no extras) in a virtual environment of its own, where the
# quickstart must run. The environment is made afresh when pyproject.toml changes;
# otherwise only lensify is reinstalled in it (pip's cache serves the rest).
WHEEL_VENV := $(VENV)-wheel
WHEEL_STAMP := $(WHEEL_VENV)/.created
WHEEL_DIR := $(VENV)/dist

$(WHEEL_STAMP): pyproject.toml
	rm -rf $(WHEEL_VENV)
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install --quiet --upgrade pip
	touch $(WHEEL_STAMP)

wheel: $(STAMP) $(WHEEL_STAMP)
	rm -rf $(WHEEL_DIR)
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir $(WHEEL_DIR) .
	$(WHEEL_VENV)/bin/python -m pip install --quiet --force-reinstall --no-deps $(WHEEL_DIR)/lensify-*.whl
	$(WHEEL_VENV)/bin/python -m pip install --quiet $(WHEEL_DIR)/lensify-*.whl
	$(WHEEL_VENV)/bin/python -m pip check
	cd $(WHEEL_DIR) && $(CURDIR)/$(WHEEL_VENV)/bin/python -I $(CURDIR)/examples/quickstart.py > /dev/null

clean:
	rm -rf $(VENV) $(WHEEL_VENV)
