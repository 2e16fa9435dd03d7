# clsctl developer tasks. `make test` and `make demo` work on a fresh clone, offline (package registries aside).
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# The torch build to install; on this project's machines these versions come from local disk.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?= -n 2
STAMP := $(VENV)/.clsctl-installed

.PHONY: venv test demo clean completions models

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH_SPEC)
	$(PY) -m pip install -q --disable-pip-version-check -e ".[dev,onnx]"
	@# Byte-compile the editable sources once: with PYTHONDONTWRITEBYTECODE set, every start would compile them again.
	$(PY) -m compileall -q clsctl
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS) tests

demo: $(STAMP)
	@bash scripts/demo.sh "$(VENV)"

completions: $(STAMP)
	$(PY) -m clsctl.cli.completions completions

# After adding or changing a model: the model-name index, the completion scripts and docs/model_zoo.md.
models: $(STAMP)
	$(PY) -m clsctl.cli.completions completions
	$(PY) -m clsctl.models._zoo_doc

clean:
	rm -rf $(VENV) runs/quickstart runs/quickstart.old-* data/digits
