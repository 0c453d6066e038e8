"""Builds the public and admin aiohttp apps from the settings, and runs them until SIGTERM.

The public listener serves only ``POST {RELAY_WEBHOOK_PATH}``; health, readiness and
metrics live on the admin port, which is never exposed to the internet.
"""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import HttpVersion10, HttpVersion11, web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from redis.asyncio import Redis

from relay import __version__
from relay.ingest.connections import SERVER_HEADER, ConnectionLimits, PublicServer, PublicSite
from relay.ingest.handler import IngestHandler
from relay.ingest.remote import ClientAddress
from relay.ingest.secrets import SecretSource
from relay.ingest.signatures import Verifier, verifier_for
from relay.observability import IngestMetrics
from relay.reconcile.metrics import ReconcileMetrics
from relay.reconcile.reconciler import Reconciler
from relay.redis_client import (
    REDIS_DOWN,
    RedisTooOld,
    check_version,
    redis_from_settings,
    wait_for_version,
)
from relay.registration.client import AnyFormatClient, ApiError
from relay.registration.keeper import RegistrationKeeper, RegistrationMetrics
from relay.registration.record import SecretCodec, SecretUnreadable
from relay.registration.registrar import Registrar
from relay.settings import Settings
from relay.streams.health import StreamHealthCollector, StreamHealthMonitor
from relay.streams.replication import ReplicaAck
from relay.streams.routes import Router
from relay.streams.trim import Retention, Trimmer
from relay.streams.writer import FanoutWriter
from relay.tls import ReloadingContext

log = structlog.get_logger("relay.server")

IN_FLIGHT_SAMPLE_SECONDS = 1.0
MAX_HEADERS = 64
HTTP_VERSIONS = (HttpVersion11, HttpVersion10)


def multiprocess_metrics() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


@dataclass
class Relay:
    """The long-lived parts of one relay process, built once and shared by every request."""

    settings: Settings
    redis: Redis
    secrets: SecretSource
    verifier: Verifier
    router: Router
    writer: FanoutWriter
    metrics: IngestMetrics
    ingest: IngestHandler
    draining: bool = False
    health: StreamHealthCollector = field(default_factory=StreamHealthCollector)
    version_checked: bool = False
    public: PublicServer | None = None  # built with the listener: it needs the loop

    @classmethod
    def from_settings(cls, settings: Settings) -> Relay:
        redis = redis_from_settings(settings)
        verifier = verifier_for(settings)
        codec = SecretCodec(settings.secret_encryption_key)
        metrics = IngestMetrics()
        if not multiprocess_metrics():
            ProcessCollector(registry=metrics.registry)
        secrets = SecretSource(
            settings.webhook_secrets,
            verifier.key_for,
            redis=redis,
            prefix=settings.stream_prefix,
            public_url=settings.public_url,
            codec=codec,
        )
        router = Router(settings.stream_prefix, settings.routes)
        ack = None
        if settings.redis_wait_replicas:
            ack = ReplicaAck(settings.redis_wait_replicas, settings.redis_wait_timeout)
        writer = FanoutWriter(redis, dedupe_ttl=settings.dedupe_ttl, ack=ack)
        ingest = IngestHandler(
            verifier=verifier,
            secrets=secrets,
            router=router,
            writer=writer,
            metrics=metrics,
            max_body_bytes=settings.max_body_bytes,
            max_in_flight=settings.max_in_flight,
            client_address=ClientAddress(settings.trusted_proxies),
        )
        relay = cls(settings, redis, secrets, verifier, router, writer, metrics, ingest)
        metrics.registry.register(relay.health)
        metrics.build_info.labels(__version__).set(1)
        return relay

    def streams(self) -> list[str]:
        """The streams the routes can write: trimmed, and reported on in /metrics."""
        return self.router.known_streams(self.settings.events)

    async def warm_up(self) -> None:
        """Check the server's version, load the script and the stored secrets. Redis being
        down here is not fatal (the version is checked once it answers); a server too old
        (:class:`RedisTooOld`) or a stored secret the encryption key cannot read is."""
        try:
            await check_version(self.redis)
            self.version_checked = True
            await self.writer.load_script()
        except REDIS_DOWN as exc:
            log.warning("redis_unavailable_at_start", error=type(exc).__name__)
        await self.secrets.refresh(strict=True)

    def sample_in_flight(self) -> None:
        """Copy the deliveries in flight and the open public connections to their gauges:
        done on each scrape and once a second (other processes' scrapes read them with
        RELAY_WORKERS > 1), which is cheaper than gauge updates per delivery. The signing keys
        ride along."""
        self.metrics.in_flight.set(self.ingest.in_flight)
        self.metrics.signing_keys.set(len(self.secrets.keys))
        if self.public is not None:
            self.metrics.connections.set(self.public.open_connections)

    async def readiness(self) -> dict[str, str]:
        problems = {}
        if self.draining:
            problems["shutdown"] = "draining"
        if not self.secrets.keys:
            problems["signing_keys"] = "none loaded"
        try:
            await self.redis.ping()
        except REDIS_DOWN as exc:
            problems["redis"] = type(exc).__name__
        return problems


def build_public_server(relay: Relay) -> PublicServer:
    """aiohttp's low-level server: the public listener has one path and one method, so it
    pays for no router, match info or middleware chain on each delivery. Its connections
    carry the deadlines and the cap of relay.ingest.connections."""
    handler = relay.ingest
    path = relay.settings.path
    not_found = {"status": "not_found"}
    not_allowed = {"status": "method_not_allowed"}

    async def dispatch(request: web.BaseRequest) -> web.StreamResponse:
        if request.version not in HTTP_VERSIONS:  # aiohttp's Python parser takes any
            response = web.json_response(
                {"status": "rejected", "reason": "http_version"},
                status=400,
                headers={"Server": SERVER_HEADER},
            )
            response.force_close()
            return response
        if request.path != path:
            return web.json_response(not_found, status=404, headers={"Server": SERVER_HEADER})
        if request.method != "POST":
            headers = {"Allow": "POST", "Server": SERVER_HEADER}
            return web.json_response(not_allowed, status=405, headers=headers)
        return await handler.handle(request)

    settings = relay.settings
    limits = ConnectionLimits(
        client_timeout=settings.client_timeout,
        keepalive_timeout=settings.keepalive_timeout,
        max_connections=settings.max_connections,
    )
    # lingering_time=0: a refused body (413) is never read to its end. max_headers: a
    # signed delivery carries about a dozen; a hundred and more only cost memory.
    relay.public = PublicServer(
        dispatch,
        limits=limits,
        metrics=relay.metrics,
        access_log=None,
        lingering_time=0,
        max_headers=MAX_HEADERS,
    )
    return relay.public


def build_admin_app(relay: Relay) -> web.Application:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "version": __version__})

    async def readyz(request: web.Request) -> web.Response:
        problems = await relay.readiness()
        if problems:
            return web.json_response({"status": "not ready", **problems}, status=503)
        return web.json_response({"status": "ready"})

    async def metrics(request: web.Request) -> web.Response:
        relay.sample_in_flight()
        if multiprocess_metrics():  # RELAY_WORKERS > 1: the sum over every process
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            registry.register(relay.health)  # sampled by this process, not in the shared files
            body = generate_latest(registry)
        else:
            body = generate_latest(relay.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def no_software_named(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Server"] = SERVER_HEADER

    app = web.Application()
    app.on_response_prepare.append(no_software_named)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


class RelayServer:
    """Both listeners of one relay process; ``relay run`` and the tests start it alike."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.relay = Relay.from_settings(settings)
        self._public: web.ServerRunner | None = None  # built in start(): it needs the loop
        self._admin = web.AppRunner(
            build_admin_app(self.relay), handle_signals=False, access_log=None
        )
        self._background: list[asyncio.Task[None]] = []
        self.tls: ReloadingContext | None = None
        if settings.tls_cert_file is not None and settings.tls_key_file is not None:
            self.tls = ReloadingContext(settings.tls_cert_file, settings.tls_key_file)
        self.registration: asyncio.Task[None] | None = None
        retention = Retention(
            settings.stream_maxlen, settings.stream_max_age, settings.stream_hard_maxlen
        )
        self.trimmer = Trimmer(
            self.relay.redis, retention, self.relay.streams,
            dropped=self.relay.metrics.dropped_unread,
        )  # fmt: skip
        self.health = StreamHealthMonitor(self.relay.redis, self.relay.streams, self.relay.health)
        self.version_check: asyncio.Task[None] | None = None
        self.reconciler: Reconciler | None = None
        self.public_port = 0
        self.admin_port = 0

    async def start(self) -> None:
        await self.relay.warm_up()
        if not self.relay.version_checked:
            self.version_check = asyncio.create_task(self._check_version_later())
            self._background.append(self.version_check)
        if self.relay.secrets.reads_record:
            self._background.append(
                asyncio.create_task(self.relay.secrets.run(self.settings.secret_refresh_interval))
            )
        if self.tls is not None:
            self._background.append(asyncio.create_task(self.tls.watch()))
        self._background.append(asyncio.create_task(self._sample_in_flight()))
        self._background.append(asyncio.create_task(self.trimmer.run()))
        self._background.append(asyncio.create_task(self.health.run()))
        if self.settings.self_register and not self.settings.worker_index:
            # With RELAY_WORKERS > 1 only process 0 registers; all read the record.
            self.registration = asyncio.create_task(self._register())
            self._background.append(self.registration)
        if self.settings.reconciling and not self.settings.worker_index:
            self._start_reconciler()
        self._public = web.ServerRunner(
            build_public_server(self.relay),
            handle_signals=False,
            shutdown_timeout=self.settings.shutdown_timeout,
        )
        await self._public.setup()
        await self._admin.setup()
        shared = self.settings.worker_index is not None  # RELAY_WORKERS > 1: SO_REUSEPORT
        public = PublicSite(
            self._public,
            self.settings.host,
            self.settings.port,
            ssl_context=self.tls.context if self.tls is not None else None,
            reuse_port=shared,
            handshake_timeout=self.settings.client_timeout,
        )
        admin = web.TCPSite(
            self._admin, self.settings.admin_bind_host, self.settings.admin_port, reuse_port=shared
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
            path=self.settings.path,
            scheme=self.settings.signature_scheme,
            signing_keys=len(self.relay.secrets.keys),
        )

    def _start_reconciler(self) -> None:
        """Heartbeat and sweeps in the background: the API never delays a delivery."""
        relay = self.relay
        self.reconciler = Reconciler.from_settings(
            self.settings,
            redis=relay.redis,
            writer=relay.writer,
            router=relay.router,
            metrics=ReconcileMetrics(relay.metrics.registry),
        )

        def receiving() -> bool:
            return bool(relay.secrets.keys) and not relay.draining

        self._background.append(asyncio.create_task(self.reconciler.heartbeat(receiving)))
        self._background.append(asyncio.create_task(self.reconciler.sweeper()))

    async def _sample_in_flight(self) -> None:
        while True:
            self.relay.sample_in_flight()
            await asyncio.sleep(IN_FLIGHT_SAMPLE_SECONDS)

    async def _check_version_later(self) -> None:
        """Redis did not answer at start-up: check its version once it does."""
        await wait_for_version(self.relay.redis)

    async def _register(self) -> None:
        """Register (or confirm) the subscription, then keep it right in the background.

        Runs while the listeners serve: deliveries are accepted as soon as a secret is
        loaded, from the stored record or from this registration. Ends only by raising
        what must stop the relay (see ``relay.registration.keeper``).
        """
        settings = self.settings
        assert settings.anyformat_api_key is not None and settings.public_url is not None
        secrets = self.relay.secrets
        async with AnyFormatClient(settings.anyformat_base_url, settings.anyformat_api_key) as api:
            registrar = Registrar(
                self.relay.redis,
                api,
                prefix=settings.stream_prefix,
                public_url=settings.public_url,
                events=settings.events,
                codec=secrets.codec,
                on_record=secrets.use,
            )
            keeper = RegistrationKeeper(
                registrar,
                RegistrationMetrics(self.relay.metrics.registry),
                can_serve=lambda: bool(secrets.keys),
                recheck_interval=settings.registration_recheck_interval,
            )
            await keeper.run()

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish (bounded), then release Redis."""
        self.relay.draining = True
        if self._public is not None:
            await self._public.cleanup()
        await self._admin.cleanup()
        await _cancel_all(self._background)
        if self.reconciler is not None:
            await self.reconciler.close()
        await self.relay.redis.aclose()
        log.info("relay_stopped")


async def _cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel background tasks and wait for them; cancel again any that swallowed it."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
        if pending:
            log.warning("background_task_ignored_cancel", tasks=[t.get_name() for t in pending])
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.debug("background_task_ended", task=task.get_name(), error=repr(task.exception()))


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
    waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
    if server.registration is not None:
        waits.append(server.registration)
    if server.version_check is not None:
        waits.append(server.version_check)
    pending = set(waits)
    while True:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        failure = _registration_failure(server.registration) or _version_failure(
            server.version_check
        )
        if failure is not None or done != {server.version_check}:
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
