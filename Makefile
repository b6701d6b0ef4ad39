# The two commands: `make run` and `make test`. Both set everything up first and are
# idempotent: a second run reinstalls nothing unless a pinned file changed.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.deps-stamp
NODE_STAMP := node_modules/.deps-stamp

.PHONY: setup run test lint bench chromium clean

setup: $(PY_STAMP) $(NODE_STAMP)

$(PY_STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check --quiet -r requirements-dev.txt
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The infrastructure checks' own venv (tests/infra): checkov pins many libraries that
# would clash with the app's pins, so it never shares .venv.
INFRA_VENV := .venv-infra
INFRA_STAMP := $(INFRA_VENV)/.deps-stamp
.PHONY: infra-setup

infra-setup: $(INFRA_STAMP)

$(INFRA_STAMP): requirements-infra.txt
	test -x $(INFRA_VENV)/bin/python || python3 -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install --disable-pip-version-check --quiet -r requirements-infra.txt
	touch $@

# Debian's Chromium for the end-to-end tests (Playwright's own browser download is not possible here).
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

run: setup
	$(PY) -m devhost.stack --demo-seed

lint: setup
	$(PY) -m ruff check .

test: setup chromium lint infra-setup
	$(PY) -m pytest

bench: setup
	$(PY) -m bench $(if $(SIZE),--size $(SIZE),)

clean:
	rm -rf .azurite .m365sim .devhost test-artifacts bench/results
