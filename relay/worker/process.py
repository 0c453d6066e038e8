"""``relay worker``: one Worker with signals, logs and its own /metrics."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, ProcessCollector, generate_latest
from redis.asyncio import Redis

from relay.observability import WorkerMetrics
from relay.redis_client import RedisTooOld, redis_from_settings, wait_for_version
from relay.settings import Settings
from relay.worker.runtime import Handler, Worker


async def _metrics_site(metrics: WorkerMetrics, host: str, port: int) -> web.AppRunner:
    async def serve_metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/metrics", serve_metrics)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def run_worker(
    settings: Settings, handler: Handler, *, metrics_port: int | None, **options: Any
) -> None:
    redis = redis_from_settings(settings)
    metrics = WorkerMetrics()
    ProcessCollector(registry=metrics.registry)
    # A blocking read must return well inside the socket timeout.
    block = min(2.0, settings.redis_timeout / 2)
    worker = Worker(redis, handler=handler, metrics=metrics, block=block, **options)
    stopped = asyncio.Event()

    def stop() -> None:
        stopped.set()
        worker.stop()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)
    runner = None
    try:
        if not await _redis_fit_or_stopped(redis, stopped):
            return
        if metrics_port is not None:
            runner = await _metrics_site(metrics, settings.host, metrics_port)
        await worker.run()
    finally:
        if runner is not None:
            await runner.cleanup()
        await redis.aclose()


async def _redis_fit_or_stopped(redis: Redis, stopped: asyncio.Event) -> bool:
    """True once Redis answered with a version new enough; False when stopped first."""
    check = asyncio.ensure_future(wait_for_version(redis))
    stopping = asyncio.ensure_future(stopped.wait())
    await asyncio.wait({check, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not check.done():
        check.cancel()
        return False
    try:
        check.result()
    except RedisTooOld as exc:
        raise SystemExit(f"relay: {exc}") from None
    return True
