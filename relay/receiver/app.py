"""The receiving program: builds its listeners and services from the settings, starts
them, and runs until SIGTERM (``relay run``; the tests start :class:`RelayServer` alike).

The public listener serves only ``POST {RELAY_WEBHOOK_PATH}``; health, readiness and
metrics live on the admin port, which is never exposed to the internet.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import structlog
from aiohttp import web

from relay.console.pages import console_routes
from relay.ingest.connections import SERVER_HEADER, PublicSite
from relay.operator.api import operator_routes
from relay.operator.operations import Operations
from relay.operator.overview import Overview
from relay.operator.overview_routes import overview_routes
from relay.operator.security import OperatorSecurity
from relay.receiver.admin import admin_app, admin_runner
from relay.receiver.parts import Relay
from relay.receiver.public import build_public_server
from relay.receiver.services import (
    Services,
    health_monitor_for,
    reconciler_for,
    services_for,
    trimmer_for,
)
from relay.reconcile.reconciler import Reconciler
from relay.redis.client import RedisTooOld
from relay.registration.client import ApiError
from relay.registration.record import SecretUnreadable
from relay.settings import Settings
from relay.tls import ReloadingContext
from relay.version import __version__

log = structlog.get_logger("relay.server")


def build_admin_app(relay: Relay) -> web.Application:
    """The receiver's /healthz (with its version), /readyz and /metrics; with
    RELAY_ADMIN_TOKEN, the operator API and console behind their guard."""
    token = relay.settings.admin_token
    operations = Operations(relay.redis, relay.streams)
    overview = Overview(
        relay.redis, relay.settings, relay.streams, relay.registration, paused=operations.paused
    )
    return admin_app(
        health={"status": "ok", "version": __version__},
        readiness=relay.ready,
        metrics=relay.scrape,
        server_header=SERVER_HEADER,
        security=OperatorSecurity(token) if token is not None else None,
        operator=[
            overview_routes(overview),
            operator_routes(operations),
            console_routes(overview),
        ],
    )


class RelayServer:
    """Both listeners of one relay process; ``relay run`` and the tests start it alike."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.relay = Relay.from_settings(settings)
        self._public: web.ServerRunner | None = None  # built in start(): it needs the loop
        self._admin = admin_runner(build_admin_app(self.relay))
        self.services = Services()
        self.tls: ReloadingContext | None = None
        if settings.tls_cert_file is not None and settings.tls_key_file is not None:
            self.tls = ReloadingContext(settings.tls_cert_file, settings.tls_key_file)
        self.trimmer = trimmer_for(self.relay)
        self.health = health_monitor_for(self.relay)
        self.reconciler: Reconciler | None = None
        self.public_port = 0
        self.admin_port = 0

    @property
    def registration(self) -> asyncio.Task[None] | None:
        """The registration service's task: its failure stops the relay."""
        return self.services.get("registration")

    @property
    def version_check(self) -> asyncio.Task[None] | None:
        """The late version check's task (Redis was down at start): a failure stops it."""
        return self.services.get("version_check")

    async def start(self) -> None:
        await self.relay.warm_up()
        settings = self.settings
        if settings.reconciling and not settings.worker_index:
            # Heartbeat and sweeps in the background: the API never delays a delivery.
            self.reconciler = reconciler_for(self.relay)
        for service in services_for(
            self.relay,
            trimmer=self.trimmer,
            health=self.health,
            tls=self.tls,
            reconciler=self.reconciler,
        ):
            self.services.start(service)
        self._public = web.ServerRunner(
            build_public_server(self.relay),
            handle_signals=False,
            shutdown_timeout=settings.shutdown_timeout,
        )
        await self._public.setup()
        await self._admin.setup()
        shared = settings.worker_index is not None  # RELAY_WORKERS > 1: SO_REUSEPORT
        public = PublicSite(
            self._public,
            settings.host,
            settings.port,
            ssl_context=self.tls.context if self.tls is not None else None,
            reuse_port=shared,
            handshake_timeout=settings.client_timeout,
        )
        admin = web.TCPSite(
            self._admin, settings.admin_bind_host, settings.admin_port, reuse_port=shared
        )
        await public.start()
        await admin.start()
        self.public_port = _bound_port(self._public)
        self.admin_port = _bound_port(self._admin)
        log.info(
            "relay_started",
            version=__version__,
            pid=os.getpid(),
            port=self.public_port,
            admin_port=self.admin_port,
            path=settings.path,
            scheme=settings.signature_scheme,
            signing_keys=len(self.relay.secrets.keys),
        )

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish (bounded), then release Redis."""
        self.relay.draining = True
        if self._public is not None:
            await self._public.cleanup()
        await self._admin.cleanup()
        await self.services.stop()
        if self.reconciler is not None:
            await self.reconciler.close()
        await self.relay.redis.aclose()
        log.info("relay_stopped")


def _bound_port(runner: web.BaseRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple):
            return int(address[1])
    raise RuntimeError("listener has no TCP address")


class FatalError(Exception):
    """Stops the relay with a message: a rejected API key, a refused registration…"""


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully.

    Raises :class:`FatalError` when registration fails for a reason retrying cannot fix.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = RelayServer(settings)
    try:
        await server.start()
    except (SecretUnreadable, RedisTooOld) as exc:
        await server.relay.redis.aclose()
        raise FatalError(str(exc)) from None
    registration, version_check = server.registration, server.version_check
    waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
    if registration is not None:
        waits.append(registration)
    if version_check is not None:
        waits.append(version_check)
    pending = set(waits)
    while True:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        failure = _registration_failure(registration) or _version_failure(version_check)
        if failure is not None or done != {version_check}:
            break  # a stop signal or a failure; a version found good lets it serve on
    log.info("relay_stopping", in_flight_limit_s=settings.shutdown_timeout)
    await server.stop()
    waits[0].cancel()
    if failure is not None:
        raise FatalError(failure)


def _version_failure(task: asyncio.Task[None] | None) -> str | None:
    if task is None or not task.done() or task.cancelled():
        return None
    exc = task.exception()
    if exc is None:
        return None
    log.error("redis_version_check_failed", error=str(exc))
    return str(exc)


def _registration_failure(task: asyncio.Task[None] | None) -> str | None:
    if task is None or not task.done() or task.cancelled():
        return None
    exc = task.exception()
    if isinstance(exc, ApiError | SecretUnreadable):
        log.error("registration_failed", error=str(exc))
        return str(exc)
    if exc is not None:
        log.error("registration_crashed", error=repr(exc), exc_info=exc)
        return f"registration failed unexpectedly: {type(exc).__name__}"
    return None
