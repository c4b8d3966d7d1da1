# jaxlatent: two commands on a fresh machine, `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench clean chromium

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch==2.13.0 first: a CPU wheel that lies on this machine's disk; anything else downloads GBs.
$(STAMP): $(PY) pyproject.toml
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[all]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/jaxlatent demo --out demo-out

test: $(STAMP) chromium
	$(PY) -m pytest -q tests

# The report test renders report.html in headless Chromium (Debian's package). Installed when
# missing and we are root or have password-less sudo; otherwise that one test reports a skip.
chromium:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then echo "chromium: no apt-get here; the browser test will skip"; \
	else \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	  else echo "chromium: not root and no password-less sudo; the browser test will skip"; exit 0; fi; \
	  echo "installing Debian's chromium for the report rendering test"; \
	  ( $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	      --no-install-recommends chromium >/dev/null ) \
	    || echo "chromium: apt-get failed; the browser test will skip"; \
	fi

bench: $(STAMP)
	$(PY) benchmarks/local_basis.py

clean:
	rm -rf $(VENV) demo-out build *.egg-info
