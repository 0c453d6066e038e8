# AnyFormat Relay. One image for the relay (`run`, the default) and for workers
# (`worker --stream … --group … --handler …`).
#
# BASE_IMAGE may be the official Python image or any Debian with python3 and python3-venv:
# nothing here assumes where Python lives. The default is pinned by digest: the index of
# python:3.12-slim (Python 3.12.13, Debian trixie, built 2026-08-05) as recorded in
# docker-library/repo-info (repos/python/remote/3.12-slim.md). To move it: pull the tag and
# take its RepoDigest (`docker buildx imagetools inspect python:3.12-slim`).
# VERSION is pyproject.toml's version (the one source): its default below is that version
# (tests/deploy/test_images.py keeps them equal), so a plain `docker build .` works, and the
# build fails when it does not match the package it builds. CI passes it explicitly:
#   docker build --build-arg VERSION="$(python3 .ci/version.py)" -t anyformat-relay:<version> .
ARG VERSION=0.1.0
ARG BASE_IMAGE=python:3.12-slim@sha256:229a2c5bfa27522db7815ea81f9bed70af17ccb9de9fc7ad142b1877b5830d36

# --- build: wheels for the relay and everything it needs ----------------------------------
FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python3 -m venv /opt/build
# Dependencies first, exactly as locked: every downloaded file must match a hash in
# requirements.lock (regenerate it with `bash .ci/lock.sh`). Then the relay itself, alone.
COPY requirements.lock ./
RUN /opt/build/bin/pip wheel --require-hashes --wheel-dir /wheels -r requirements.lock
COPY pyproject.toml README.md ./
COPY relay ./relay
ARG VERSION
RUN /opt/build/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && { test -f "/wheels/anyformat_relay-${VERSION}-py3-none-any.whl" \
         || { echo "VERSION=${VERSION} is not pyproject.toml's version: $(ls /wheels/anyformat_relay-*)" >&2; exit 1; }; }

# --- runtime: the wheels installed into a venv, no compilers or build tools ---------------
FROM ${BASE_IMAGE} AS runtime
ARG VERSION
LABEL org.opencontainers.image.title="anyformat-relay" \
      org.opencontainers.image.description="Receives AnyFormat's signed webhooks and relays them exactly once per stream to Redis Streams" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Proprietary" \
      org.opencontainers.image.vendor="AnyFormat Relay" \
      org.opencontainers.image.source="https://example.invalid/anyformat-relay"
ENV PATH=/opt/relay/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python3 -m venv /opt/relay \
    && /opt/relay/bin/pip install --no-index --no-deps /wheels/*.whl \
    && /opt/relay/bin/pip check \
    && /opt/relay/bin/pip uninstall --yes pip \
    && groupadd --system --gid 10001 relay \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin relay
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080 9090
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["relay", "healthcheck"]
ENTRYPOINT ["relay"]
CMD ["run"]
