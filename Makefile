# `make run` trains the default model; `make test` runs lint, types and tests.
# Both create .venv when it is missing. TORCH picks the torch wheel installed
# when the venv has none (the CPU build by default).
VENV  ?= .venv
PY    := $(VENV)/bin/python
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.kdegen-installed

.PHONY: run test bench install clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/kdegen train --method kdegan --data mnist5k --steps 3000 --lr-decay linear --out runs/default --force
	$(VENV)/bin/kdegen evaluate runs/default --reference mnist5k
	$(VENV)/bin/kdegen report runs/default

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest

bench: $(STAMP)
	$(PY) benchmarks/train_speed.py

clean:
	rm -rf $(VENV) build src/*.egg-info .mypy_cache .ruff_cache .pytest_cache
