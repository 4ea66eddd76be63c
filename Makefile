# Two commands matter: `make demo` and `make test`. Both install what they need first.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: install browser demo run test unit lint typecheck iac schema bench soak clean

install: $(STAMP) $(NODE_STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (Python 3.11) on PATH; set PYTHON=..." >&2; exit 2; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "need Node 20+ and npm on PATH for Azurite" >&2; exit 2; }
	npm ci --no-audit --no-fund --silent
	touch $(NODE_STAMP)

CHECKOV_VENV := $(VENV)/checkov
CHECKOV      := $(CHECKOV_VENV)/bin/checkov

$(CHECKOV_VENV)/.installed: infra/requirements-checkov.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (Python 3.11) on PATH; set PYTHON=..." >&2; exit 2; }
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r infra/requirements-checkov.txt
	touch $@

iac: $(CHECKOV_VENV)/.installed  ## checkov over infra/; its own venv (checkov needs packaging<24, pytest 9 needs >=24)
	$(CHECKOV) -d infra --framework bicep --quiet --compact
	@# checkov exits 0 on a file it cannot parse; fail on that too
	$(CHECKOV) -d infra --framework bicep --quiet --compact -o json | $(CHECKOV_VENV)/bin/python -c 'import json, sys; \
	r = json.load(sys.stdin); n = sum(x.get("summary", x).get("parsing_errors", 0) for x in (r if isinstance(r, list) else [r])); \
	sys.exit(f"checkov could not parse {n} file(s) in infra/" if n else 0)'

# The status page's browser test drives Debian's chromium at /usr/bin/chromium through Playwright (never
# `playwright install`, which downloads a browser of its own). Installing needs root or sudo, once.
browser:
	@test -x /usr/bin/chromium || { \
	  SUDO=$$( [ "$$(id -u)" -eq 0 ] || command -v sudo || true ); \
	  $$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends chromium; }

demo: install
	$(PY) -m licensing.dev.demo

PORT ?= 7071

run: install  ## the whole app on this machine, interactive, on http://127.0.0.1:$(PORT)/api; Ctrl-C stops it
	$(PY) -m licensing.dev.run --port $(PORT)

test: install browser lint typecheck iac
	$(PY) -m pytest -q

bench: install  ## performance figures (tables: ours vs the naive way); not part of make test
	$(PY) -m tests.bench.webhook
	$(PY) -m tests.bench.sweep
	$(PY) -m tests.bench.throughput
	$(PY) -m tests.bench.status_page
	@# last: it exits non-zero above its target (import function_app <= 2x azure.functions), after the other tables
	$(PY) -m tests.bench.cold_start

soak: install  ## the soak tests at full size (2,000 requests; one host, then three worker processes); make test runs them small
	SOAK_USERS=2000 $(PY) -m pytest -q -s tests/e2e/test_soak.py tests/e2e/test_scale_out.py

unit: install
	$(PY) -m pytest -q tests/unit

# actionlint checks .github/workflows; its shellcheck is the pinned one in the venv and pyflakes is off (no inline
# Python there), so the result never depends on what else the machine has on PATH.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/actionlint -shellcheck=$(VENV)/bin/shellcheck -pyflakes=

typecheck: install
	$(VENV)/bin/mypy

schema: install  ## regenerate docs/hr-events.schema.json from the pydantic model
	$(PY) -c "import json; from licensing.core.hr_events import json_schema; \
	open('docs/hr-events.schema.json', 'w').write(json.dumps(json_schema(), indent=2, sort_keys=True) + '\n')"

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
