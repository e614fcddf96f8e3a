# One image per service, each with only its own dependencies:
#   docker build --build-arg SERVICE=encoder -t reelforge-encoder .
# SERVICE is one of gateway, generator, encoder, qa, uploader. Only the generator installs torch
# (CUDA wheels by default; TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu for a CPU build).
# Tests on machines without a registry pass BASE_IMAGE (a local bookworm, deploy/test/base-image.sh) and
# PIP_OPTIONS="--no-index --find-links /tmp/wheelhouse" with wheels in deploy/docker/wheelhouse/.
# The base by digest (python 3.11.13 on Debian bookworm; the tag says what it is, the digest is what is pulled).
# To move it: `docker buildx imagetools inspect python:3.11-slim-bookworm`, then both parts here together.
ARG BASE_IMAGE=python:3.11.13-slim-bookworm@sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1
FROM ${BASE_IMAGE}

ENV PATH=/opt/venv/bin:$PATH \
    HOME=/home/reelforge \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    REELFORGE_LOG_JSON=true \
    REELFORGE_METRICS_PORT=9100

# Shared by every service's image (same layers): the venv, the unprivileged user, the wheelhouse
# (empty in production builds: then pip installs from the package index).
RUN python3 -m venv /opt/venv \
 && echo "reelforge:x:10001:10001:reelforge:/home/reelforge:/usr/sbin/nologin" >> /etc/passwd \
 && echo "reelforge:x:10001:" >> /etc/group \
 && mkdir -p /home/reelforge && chown 10001:10001 /home/reelforge
COPY deploy/docker/wheelhouse/ /tmp/wheelhouse/

ARG SERVICE
ARG TORCH=torch==2.13.0
ARG TORCH_INDEX_URL=
ARG PIP_OPTIONS=
# Dependencies first, from the service's hashed lock alone (a cached layer until it changes), then the code.
# --require-hashes: every file pip fetches must have a sha256 the lock names (`make lock` writes it);
# --no-deps: nothing that the lock does not name. torch has its own step (CPU or CUDA wheels differ), pinned
# by version (ARG TORCH, as services/generator/pyproject.toml), after the locked packages.
COPY deploy/docker/requirements/${SERVICE}.txt /src/requirements.txt
RUN test -n "${SERVICE}" || { echo "build with --build-arg SERVICE=<gateway|generator|encoder|qa|uploader>"; exit 1; }; \
    pip install --no-cache-dir ${PIP_OPTIONS} --require-hashes --no-deps -r /src/requirements.txt \
 && if [ "${SERVICE}" = generator ]; then \
        pip install --no-cache-dir ${PIP_OPTIONS} ${TORCH_INDEX_URL:+--index-url ${TORCH_INDEX_URL}} "${TORCH}" || exit 1; \
    fi \
 && rm -rf /tmp/wheelhouse
COPY shared/ /src/shared/
COPY services/${SERVICE}/ /src/services/${SERVICE}/
COPY pyproject.toml /src/
COPY src/ /src/src/
# The CLI (`reelforge worker`) installs without its dependencies: it imports services lazily, so
# the encoder's image needs neither torch nor the other services.
# /models: the generator's model cache (a volume in compose); created here so the volume belongs to the user.
# pip check: the lock held everything the packages need (the CLI's requirement of the other services aside).
RUN pip install --no-cache-dir --no-deps --force-reinstall --no-build-isolation /src/shared "/src/services/${SERVICE}" /src \
 && { pip check || true; } | grep -v -e '^reelforge [0-9.]* requires reelforge-' -e '^No broken requirements' | { ! grep .; } \
 && rm -rf /src \
 && mkdir -p /models && chown 10001:10001 /models

ENV REELFORGE_WORKER=${SERVICE}
USER 10001:10001
WORKDIR /home/reelforge
EXPOSE 9100
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('REELFORGE_METRICS_PORT', '9100'), timeout=4)"]
# Exec form: SIGTERM reaches the worker itself (no shell in between), which drains and exits.
ENTRYPOINT ["reelforge", "worker"]
