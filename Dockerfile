# AnyFormat Relay. One image for the relay (`run`, the default) and for workers
# (`worker --stream … --group … --handler …`).
#
# BASE_IMAGE may be the official Python image or any Debian with python3 and python3-venv:
# nothing here assumes where Python lives. VERSION is pyproject.toml's version (the one
# source); the build fails when it does not match the package it builds:
#   docker build --build-arg VERSION="$(python3 .ci/version.py)" -t anyformat-relay:<version> .
ARG BASE_IMAGE=python:3.12-slim

# --- build: wheels for the relay and everything it needs ----------------------------------
FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python3 -m venv /opt/build
COPY pyproject.toml README.md ./
COPY relay ./relay
ARG VERSION
RUN /opt/build/bin/pip wheel --wheel-dir /wheels . \
    && test -f "/wheels/anyformat_relay-${VERSION:?--build-arg VERSION is required}-py3-none-any.whl"

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
    && /opt/relay/bin/pip install --no-index --find-links /wheels anyformat-relay \
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
