# What a developer and CI run. Works on a fresh Debian machine that has only python3 and
# pip: everything else (system packages, the virtual environment, the dev tools) is
# installed by these recipes.
#
#   make demo        serve examples/demo.py on http://127.0.0.1:8000
#   make test        system packages, dev install, lint, typecheck, docs, package, tests
#   make docs        the documentation site in docs/_build/html (warnings are errors)
#   make package     sdist and wheel in dist/, twine check, wheel smoke-tested in a fresh venv
#   make lint        ruff check + ruff format --check
#   make format      let ruff fix what it can and format
#   make typecheck   mypy --strict on wsgisse (and on the test infrastructure)
#   make pytest      the test suite alone (PYTEST_ARGS="-k redis -x" to narrow it)
#   make jstest      the browser client's pure parts under node --test
#   make js          regenerate wsgisse.global.js from wsgisse/static/wsgisse.js
#   make coverage    the test suite under coverage, live servers included
#   make bench       wsgisse beside its peers, one table (benchmarks/README.rst; ~30 min)
#   make bench-quick the main scenarios only (~5 min)
#   make soak        churn for a few minutes, then check nothing leaked
#   make clean       build output and caches; `make distclean` also removes .venv

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Present once `pip install -r requirements/dev.txt` (or demo.txt) has succeeded for the
# current packaging files.
DEV_STAMP := $(VENV)/.wsgisse-dev-installed
DEMO_STAMP := $(VENV)/.wsgisse-demo-installed
PIP_INSTALL := $(BIN)/python -m pip install --no-input --disable-pip-version-check \
	--progress-bar off
PYTEST_ARGS ?=

# command:package pairs for the servers and the browser the live tests start (and openssl,
# which makes their test certificates). A command given as an absolute path is a file
# that must exist (mod_wsgi is a module, not a command).
SYSTEM_DEPS := redis-server:redis-server nginx:nginx chromium:chromium caddy:caddy \
	openssl:openssl apache2:apache2 firefox-esr:firefox-esr node:nodejs \
	/usr/lib/apache2/modules/mod_wsgi.so:libapache2-mod-wsgi-py3
# The Django tests' PostgreSQL (tests/_postgres.py runs its initdb and postgres from
# /usr/lib/postgresql/*/bin, which is not on PATH: pg_ctlcluster, from the same install,
# is). setpriv (util-linux, always present) runs them as the postgres user when root.
SYSTEM_DEPS += pg_ctlcluster:postgresql

# Test infrastructure that is typed like the package (the package's own list is in
# pyproject.toml, [tool.mypy] files).
TYPED_TEST_FILES := tests/_servers.py tests/_browser.py tests/conftest.py \
	tests/test_infrastructure.py tests/live/_runner.py tests/live/apps.py \
	tests/live/run_gevent.py tests/live/run_werkzeug.py \
	tests/_proxies.py tests/test_deploy.py tests/live/deploy_app.py \
	tests/_apache.py tests/test_apache.py tests/test_forwarded.py tests/test_proxy_clients.py
TYPED_TEST_FILES += tests/_postgres.py tests/_django.py tests/test_django.py \
	tests/test_django_checks.py tests/test_django_browser.py tests/live/django_units.py
TYPED_TEST_FILES += tests/_client_checks.py tests/test_client.py tests/test_client_browser.py \
	tests/test_client_firefox.py tests/live/client_app.py

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
# `make test` runs its steps in order, even under -j.
.NOTPARALLEL:

.PHONY: help venv dev system-deps demo test lint format typecheck pytest coverage bench \
	docs package clean distclean

help:
	@sed -n '5,16s/^# \{0,1\}//p' $(firstword $(MAKEFILE_LIST))

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

venv: $(BIN)/python

# Re-install only when the packaging files change: the install is editable, so source
# changes need none.
$(DEV_STAMP): setup.cfg setup.py pyproject.toml requirements/dev.txt requirements/docs.txt \
		| $(BIN)/python
	$(PIP_INSTALL) -r requirements/dev.txt
	touch $@

# The demo needs only its own few packages, not the test tools.
$(DEMO_STAMP): setup.cfg setup.py pyproject.toml requirements/demo.txt | $(BIN)/python
	$(PIP_INSTALL) -r requirements/demo.txt
	touch $@

dev: $(DEV_STAMP)

# Installs the missing system packages with apt-get (as root, or through sudo). While it
# installs, a policy-rc.d that we create (only if none exists) stops the packages from
# starting their system services: the tests start their own servers on free ports.
define INSTALL_SYSTEM_DEPS
missing=()
for pair in "$$@"; do
    cmd=$${pair%%:*}
    pkg=$${pair#*:}
    # nginx lives in /usr/sbin, which a non-root PATH may lack.
    if [[ $$cmd == /* ]]; then
        [ -e "$$cmd" ] || missing+=("$$pkg")
    elif ! command -v "$$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$$cmd" ]; then
        missing+=("$$pkg")
    fi
done
if [ $${#missing[@]} -eq 0 ]; then
    echo "system packages: all present"
    exit 0
fi
echo "system packages: installing $${missing[*]}"
if [ "$$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "error: $${missing[*]} missing, and installing needs root or sudo" >&2
    exit 1
fi
"$${as_root[@]}" env DEBIAN_FRONTEND=noninteractive bash -euo pipefail -c '
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$$policy" ]; then
        trap "rm -f $$policy" EXIT
        printf "#!/bin/sh\nexit 101\n" > "$$policy"
        chmod 755 "$$policy"
    fi
    # Wait (bounded) for another apt run to release its lock instead of failing at once;
    # keep existing configuration files rather than ask.
    apt_options=(-o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef
                 -o Dpkg::Options::=--force-confold)
    apt-get "$${apt_options[@]}" update
    apt-get "$${apt_options[@]}" install -y --no-install-recommends "$$@"
' install-system-deps "$${missing[@]}"
for pair in "$$@"; do
    cmd=$${pair%%:*}
    if ! command -v "$$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$$cmd" ]; then
        echo "error: $$cmd still missing after apt-get install" >&2
        exit 1
    fi
done
endef
export INSTALL_SYSTEM_DEPS

system-deps:
	@bash -euo pipefail -c "$$INSTALL_SYSTEM_DEPS" system-deps $(SYSTEM_DEPS)

demo: $(DEMO_STAMP)
	$(BIN)/python examples/demo.py

test: system-deps lint typecheck docs package jstest pytest

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(DEV_STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy --strict
	$(BIN)/mypy --strict $(TYPED_TEST_FILES)

pytest: $(DEV_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The browser client (issue 14): its pure parts and its reconnection loop under Node's own
# test runner (each test bounded: a failed assertion must not leave a retry loop running).
.PHONY: jstest js
jstest:
	node --test --test-timeout=30000 tests/js/

js: $(DEV_STAMP)
	$(BIN)/python -c 'import wsgisse._client as c; print("wrote", c.write_classic_script())'

coverage: system-deps $(DEV_STAMP)
	rm -f .coverage .coverage.*
	$(BIN)/python -m coverage run -m pytest $(PYTEST_ARGS)
	$(BIN)/python -m coverage combine
	$(BIN)/python -m coverage report

# bench only: the benchmarks' own venv (the peers stay out of the dev venv), and extra
# arguments, e.g. BENCH_ARGS="--only fanout-1000x10,wsgisse,nchan" (benchmarks/README.rst).
BENCH_VENV ?= benchmarks/.venv
BENCH_ARGS ?=
SOAK_ARGS ?=
.PHONY: bench-quick soak

# `make bench` ~30 min, `make bench-quick` ~5 min, `make soak` (issue 5) a few
# minutes; each installs what it needs (benchmarks/setup.sh) and stops by itself.
bench:
	bash benchmarks/setup.sh $(PYTHON) $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m benchmarks $(BENCH_ARGS)
	$(BENCH_VENV)/bin/python -m benchmarks.inprocess

bench-quick:
	bash benchmarks/setup.sh $(PYTHON) $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m benchmarks --quick $(BENCH_ARGS)

soak:
	bash benchmarks/setup.sh $(PYTHON) $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m benchmarks.soak $(SOAK_ARGS)

# The site, rebuilt whole (-E: an incremental build would not repeat the warnings of
# unchanged pages) with warnings as errors and every cross-reference resolved (-n), then the
# doctest builder, which runs every snippet of the docs (tests/test_docs.py checks that
# every Python snippet is one the builder runs).
SPHINX_OPTS := -E -W --keep-going -n -q
docs: $(DEV_STAMP)
	$(BIN)/sphinx-build -b html $(SPHINX_OPTS) docs docs/_build/html
	$(BIN)/sphinx-build -b doctest $(SPHINX_OPTS) docs docs/_build/doctest

# What a release uploads, checked as PyPI would, then installed into a fresh venv with
# nothing else: the core must pull in no dependency and stream an event over HTTP.
package: $(DEV_STAMP)
	rm -rf dist build/package-smoke
	$(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*
	$(BIN)/python tests/package_smoke.py dist build/package-smoke

clean:
	rm -rf build dist docs/_build .eggs *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis \
		htmlcov .coverage .coverage.* coverage.xml
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
