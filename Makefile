# The two set-up commands of the README: `make demo` and `make test`.
# Both create .venv if absent and install the project (with its test extra)
# from the project's own files. `make test` also installs Debian's chromium for
# the browser tests (Playwright drives it; its own browser download is not used);
# the host tests build ComfyUI's server environment themselves (tests/host/server_env.py).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.humansd-installed
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: test demo install clean-cache

$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "error: $(CHROMIUM) is missing and there is no apt-get: install Chromium (Debian: apt-get install chromium) for the browser tests" >&2; exit 1; }
	@[ -z "$(SUDO)" ] || command -v sudo >/dev/null || { echo "error: $(CHROMIUM) is missing; installing it needs root or sudo: apt-get install -y chromium" >&2; exit 1; }
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
	@test -x $(CHROMIUM) || { echo "error: apt-get install chromium left no $(CHROMIUM)" >&2; exit 1; }

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP) $(CHROMIUM)
	$(PY) -m pytest

demo: $(STAMP)
	$(PY) -m humansd_core.cli demo --output out/demo

clean-cache:
	rm -rf .cache
