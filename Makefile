# The two set-up commands of the README: `make demo` and `make test`.
# Both create .venv if absent and install the project (with its test extra)
# from the project's own files.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.humansd-installed

.PHONY: test demo install clean-cache

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

demo: $(STAMP)
	$(PY) -m humansd_core.cli demo --output out/demo

clean-cache:
	rm -rf .cache
