"""``relay worker``: one Worker with signals, logs and its own admin port (``/healthz``,
``/readyz``, ``/metrics``)."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from aiohttp import web
from prometheus_client import ProcessCollector, generate_latest

from relay.observability import TaskCollector
from relay.receiver.admin import admin_app, admin_runner
from relay.redis.client import Redis, RedisTooOld, redis_from_settings, wait_for_version
from relay.settings import Settings
from relay.worker.metrics import WorkerMetrics
from relay.worker.runtime import Handler, Worker


async def _admin_site(worker: Worker, host: str, port: int) -> web.AppRunner:
    async def readiness() -> tuple[int, dict[str, Any]]:
        """Ready: set-up done, Redis answers, the group exists."""
        reason = await worker.readiness()
        if reason is None:
            return 200, {"status": "ready"}
        return 503, {"status": "not_ready", "reason": reason}

    app = admin_app(
        health={"status": "ok"},
        readiness=readiness,
        metrics=lambda: generate_latest(worker.metrics.registry),
    )
    runner = admin_runner(app)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def run_worker(
    settings: Settings, handler: Handler, *, metrics_port: int | None, **options: Any
) -> None:
    redis = redis_from_settings(settings)
    metrics = WorkerMetrics()
    ProcessCollector(registry=metrics.registry)
    metrics.registry.register(TaskCollector())
    # A blocking read must return well inside the socket timeout.
    block = min(2.0, settings.redis_timeout / 2)
    worker = Worker(redis, handler=handler, metrics=metrics, block=block, **options)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, worker.stop)
    runner = None
    try:
        # Up before Redis is: /healthz alive, /readyz "not ready" while Redis is away.
        if metrics_port is not None:
            runner = await _admin_site(worker, settings.host, metrics_port)
        await _run_on_a_fit_redis(worker, redis)
    finally:
        if runner is not None:
            await runner.cleanup()
        await redis.aclose()


async def _run_on_a_fit_redis(worker: Worker, redis: Redis) -> None:
    """Run the worker while the server's version is checked (once it answers: the worker
    waits for Redis on its own); a server too old stops it with one clear line."""
    check = asyncio.ensure_future(wait_for_version(redis))
    run = asyncio.ensure_future(worker.run())
    try:
        await asyncio.wait({check, run}, return_when=asyncio.FIRST_COMPLETED)
        if check.done() and isinstance(check.exception(), RedisTooOld):
            worker.stop()
            await run
            raise SystemExit(f"relay: {check.exception()}")
        await run
    finally:
        check.cancel()
        run.cancel()
