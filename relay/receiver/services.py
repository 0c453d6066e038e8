"""The receiver's background services: each a named coroutine, started as one task and
stopped the same way (cancelled, awaited, cancelled again if it swallowed that).

Which run depends on the settings: see :func:`services_for`. None delays a delivery.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import structlog

import relay.allocator as allocator
from relay.ingest.body import BodyBudget
from relay.memory import MiB
from relay.receiver.parts import Relay
from relay.reconcile.metrics import ReconcileMetrics
from relay.reconcile.reconciler import Reconciler
from relay.redis.client import REDIS_DOWN, wait_for_version
from relay.redis.functions import load_library
from relay.registration.client import AnyFormatClient
from relay.registration.keeper import RegistrationKeeper, RegistrationMetrics
from relay.registration.registrar import Registrar
from relay.streams.health import StreamHealthMonitor
from relay.streams.trim import Retention, Trimmer
from relay.tls import ReloadingContext

log = structlog.get_logger("relay.server")

IN_FLIGHT_SAMPLE_SECONDS = 1.0
MEMORY_CHECK_SECONDS = 1.0
READINESS_SAMPLE_SECONDS = 5.0
# Bodies must have let go of this much since the last trim: a trim walks the whole heap,
# so it is done after bursts, not after every delivery.
TRIM_AFTER_BYTES = 16 * MiB


@dataclass(frozen=True)
class Service:
    """One background unit: its name (the task's, in logs) and what it runs."""

    name: str
    run: Callable[[], Coroutine[Any, Any, None]]


class Services:
    """The running services: started one way, stopped together."""

    def __init__(self) -> None:
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, service: Service) -> asyncio.Task[None]:
        task = asyncio.create_task(service.run(), name=service.name)
        self.tasks[service.name] = task
        return task

    def get(self, name: str) -> asyncio.Task[None] | None:
        return self.tasks.get(name)

    async def stop(self) -> None:
        await cancel_all(list(self.tasks.values()))


async def cancel_all(tasks: list[asyncio.Task[None]]) -> None:
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


def trimmer_for(relay: Relay) -> Trimmer:
    settings = relay.settings
    retention = Retention(
        settings.stream_maxlen, settings.stream_max_age, settings.stream_hard_maxlen
    )
    return Trimmer(relay.redis, retention, relay.streams, dropped=relay.metrics.dropped_unread)


def health_monitor_for(relay: Relay) -> StreamHealthMonitor:
    return StreamHealthMonitor(relay.redis, relay.streams, relay.health)


def reconciler_for(relay: Relay) -> Reconciler:
    return Reconciler.from_settings(
        relay.settings,
        redis=relay.redis,
        writer=relay.writer,
        router=relay.router,
        metrics=ReconcileMetrics(relay.metrics.registry),
    )


def services_for(
    relay: Relay,
    *,
    trimmer: Trimmer,
    health: StreamHealthMonitor,
    tls: ReloadingContext | None,
    reconciler: Reconciler | None,
) -> list[Service]:
    """The services this process runs, in start order. With RELAY_WORKERS > 1 only process
    0 registers and reconciles; all read the record."""
    settings = relay.settings
    services = []
    if not relay.version_checked:
        services.append(Service("version_check", lambda: check_version_later(relay)))
    if relay.secrets.reads_record:
        interval = settings.secret_refresh_interval
        services.append(Service("secret_refresh", lambda: relay.secrets.run(interval)))
    if tls is not None:
        services.append(Service("tls_reload", tls.watch))
    services.append(Service("in_flight_sampler", lambda: sample_in_flight(relay)))
    services.append(Service("readiness_sampler", lambda: sample_readiness(relay)))
    if allocator.can_trim():
        budget = relay.body_budget
        services.append(Service("memory_return", lambda: return_memory(budget)))
    services.append(Service("trimmer", trimmer.run))
    services.append(Service("stream_health", health.run))
    if settings.self_register and not settings.worker_index:
        services.append(Service("registration", lambda: register(relay)))
    if reconciler is not None:

        def receiving() -> bool:
            return bool(relay.secrets.keys) and not relay.draining

        services.append(Service("reconcile_heartbeat", lambda: reconciler.heartbeat(receiving)))
        services.append(Service("reconcile_sweeper", reconciler.sweeper))
    return services


async def check_version_later(relay: Relay) -> None:
    """Redis did not answer at start-up: check its version once it does, and load the
    Functions library workers call (they would load it themselves, but need not)."""
    await wait_for_version(relay.redis)
    try:
        await load_library(relay.redis)
    except REDIS_DOWN as exc:  # gone again: the first FCALL loads it
        log.warning("functions_not_loaded", error=type(exc).__name__)


async def sample_in_flight(relay: Relay) -> None:
    while True:
        relay.sample_in_flight()
        await asyncio.sleep(IN_FLIGHT_SAMPLE_SECONDS)


def return_memory_after_burst(budget: BodyBudget, trim: allocator.Trim = allocator.trim) -> bool:
    """Trim the heap once bodies have let go of ``TRIM_AFTER_BYTES`` since the last trim
    (the peak is then reset): glibc would otherwise keep a burst's pages for good."""
    if budget.peak - budget.held < TRIM_AFTER_BYTES:
        return False
    log.debug("memory_return", peak=budget.peak, held=budget.held)
    budget.peak = budget.held
    trim()
    return True


async def return_memory(budget: BodyBudget) -> None:
    while True:
        await asyncio.sleep(MEMORY_CHECK_SECONDS)
        return_memory_after_burst(budget)


async def sample_readiness(relay: Relay) -> None:
    """relay_ready for the alert on /readyz failing: what the probe would see, every 5 s,
    also where nothing probes."""
    while True:
        await relay.readiness()
        await asyncio.sleep(READINESS_SAMPLE_SECONDS)


async def register(relay: Relay) -> None:
    """Register (or confirm) the subscription, then keep it right in the background.

    Runs while the listeners serve: deliveries are accepted as soon as a secret is
    loaded, from the stored record or from this registration. Ends only by raising
    what must stop the relay (see ``relay.registration.keeper``).
    """
    settings = relay.settings
    assert settings.anyformat_api_key is not None and settings.public_url is not None
    secrets = relay.secrets
    async with AnyFormatClient(settings.anyformat_base_url, settings.anyformat_api_key) as api:
        registrar = Registrar(
            relay.redis,
            api,
            prefix=settings.stream_prefix,
            public_url=settings.public_url,
            events=settings.events,
            codec=secrets.codec,
            on_record=secrets.use,
        )
        keeper = RegistrationKeeper(
            registrar,
            RegistrationMetrics(relay.metrics.registry),
            can_serve=lambda: bool(secrets.keys),
            recheck_interval=settings.registration_recheck_interval,
            status=relay.registration,
        )
        await keeper.run()
