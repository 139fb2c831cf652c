# The two commands a newcomer needs: `make run` and `make test`. Everything else is a part of them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv from PATH, else the copy pip installs as a module (no download from anywhere but PyPI).
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
ENV_FILE := $(if $(wildcard .env),--env-file .env,)
RUN := $(UV) run --frozen $(ENV_FILE)

.PHONY: help setup run test test-fast lint fmt migrate api worker beat flower sim clean bench bench-quick bench-sse

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# Bytecode compiled once, explicitly: every process the stack and the tests start would otherwise compile
# its imports again where PYTHONDONTWRITEBYTECODE is set (as on CI), about 3 s of CPU each.
setup: ## install uv if missing, sync the environment from uv.lock, compile bytecode
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 \
		|| python3 -m pip install --quiet uv \
		|| python3 -m pip install --quiet --user --break-system-packages uv
	@$(UV) sync --frozen --quiet --compile-bytecode
	@$(UV) run --frozen python -m compileall -q api shared worker sim dev migrations bench tests >/dev/null

run: setup ## everything at once: migrate, then simulator, API, worker, beat and Flower in one terminal
	@$(UV) run --frozen python -m dev.run

# Three pytest processes (TEST_PROCESSES), each taking whole modules (a module's stack starts once); the
# end-to-end modules mostly wait, so three keep two cores busier than two do.
TEST_PROCESSES ?= 3

test: setup ## the whole suite (unit, integration, end-to-end) against real Postgres, Redis and Celery
	@$(UV) run --frozen pytest -n $(TEST_PROCESSES) --dist loadfile

test-fast: setup ## unit and integration tests only
	@$(UV) run --frozen pytest tests/unit tests/integration

lint: setup ## ruff
	@$(UV) run --frozen ruff check .
	@$(UV) run --frozen ruff format --check .

fmt: setup ## format and fix what ruff can
	@$(UV) run --frozen ruff format .
	@$(UV) run --frozen ruff check --fix .

migrate: setup ## apply database migrations (DATABASE_URL)
	@$(RUN) python -m dev.procs migrate

api: setup ## the HTTP API on $$PORT (default 8000)
	@$(RUN) python -m dev.procs api

worker: setup ## a Celery worker (all queues)
	@$(RUN) python -m dev.procs worker

beat: setup ## the Celery beat scheduler (poll ticks, dispatch, sweeper): run exactly one
	@$(RUN) python -m dev.procs beat

flower: setup ## Flower, the Celery dashboard, on $$FLOWER_PORT (default 5555)
	@$(RUN) python -m dev.procs flower

sim: setup ## the bundled Sora simulator on $$SIM_PORT (default 8765)
	@$(RUN) python -m dev.procs sim

bench: setup ## every benchmark scenario at full size (ARGS=… for options); results in bench/results/
	@$(UV) run --frozen python -m bench $(ARGS)

bench-quick: setup ## every benchmark scenario at small sizes (python -m bench --quick)
	@$(UV) run --frozen python -m bench --quick $(ARGS)

bench-sse: setup ## SSE fan-out benchmark: STREAMS concurrent event streams (default 2000) on one API process
	@$(UV) run --frozen python -m bench.sse_fanout --streams $${STREAMS:-2000} --jobs $${JOBS:-30}

clean: ## remove local state (.data: embedded databases, media, demo account)
	rm -rf .data test-artifacts
