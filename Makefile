# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint docs clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The training dependencies only: what `python train.py` needs.
$(VENV)/.train: pyproject.toml constraints.txt | $(BIN)/activate
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $@

# Plus the SageMaker launcher, the docs site and the dev tools (pytest, ruff, mypy, moto server).
$(VENV)/.dev: pyproject.toml constraints.txt | $(BIN)/activate
	$(BIN)/pip install --quiet -c constraints.txt -e ".[sagemaker,search,tracking,docs,dev]"
	touch $(VENV)/.train $@

demo: $(VENV)/.train
	$(BIN)/python train.py experiment=demo

test: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/mkdocs build --strict --quiet --site-dir .cache/site
	$(BIN)/python -m pytest --cov --cov-report=term:skip-covered

# The documentation site in site/ (mkdocs serve: a live preview).
docs: $(VENV)/.dev
	$(BIN)/mkdocs build --strict

lint: $(VENV)/.dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .cache outputs multirun site
