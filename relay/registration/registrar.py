"""Exactly one AnyFormat subscription per public URL, however many replicas and restarts.

Every change happens under the URL's Redis lock, confirmed before each API call: verify the
stored subscription is still listed (reuse it), else create one, store its secret before
anything uses it, then delete the subscriptions for this URL whose secret we do not hold.
Subscriptions for other URLs are never touched. The edges:

- a create whose answer was lost (timeout, reset, 5xx) may have taken effect: before trying
  again, list and delete the same-URL subscriptions we hold no secret for;
- a created subscription whose secret cannot be stored is deleted (after retrying the save):
  nobody could verify its deliveries;
- a predecessor that is still active may still hold retries of deliveries: it retires with
  a grace period, its secret still accepted, instead of being deleted at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import structlog

from relay.redis.client import Redis
from relay.redis.errors import REDIS_DOWN
from relay.redis.keys import registration_lock_key
from relay.registration import client as api
from relay.registration.client import AnyFormatClient, ApiError, Webhook, with_retries
from relay.registration.lock import RedisLock
from relay.registration.record import (
    RegistrationRecord,
    RetiringSubscription,
    SecretCodec,
    delete_record,
    load_record,
    save_record,
)
from relay.registration.urls import same_url

log = structlog.get_logger("relay.registration")
T = TypeVar("T")

LOCK_TTL = 30.0
WAIT_POLL = 0.25
RETIRE_GRACE = 300.0  # seconds a replaced, still active subscription keeps being accepted
SAVE_ATTEMPTS = 5


class Registrar:
    def __init__(
        self,
        redis: Redis,
        client: AnyFormatClient,
        *,
        prefix: str,
        public_url: str,
        events: list[str],
        codec: SecretCodec | None = None,
        on_record: Callable[[RegistrationRecord | None], None] = lambda record: None,
        lock_ttl: float = LOCK_TTL,
        retire_grace: float = RETIRE_GRACE,
    ) -> None:
        self.redis = redis
        self.client = client
        self.prefix = prefix
        self.url = public_url
        self.events = events
        self.codec = codec or SecretCodec()
        self.on_record = on_record
        self.lock_key = registration_lock_key(prefix, public_url)
        self.lock_ttl = lock_ttl
        self.retire_grace = retire_grace
        self._lock: RedisLock | None = None

    # --- coordination --------------------------------------------------------------------

    async def ensure(self) -> RegistrationRecord:
        """The subscription of our URL, verified or created; waits while another replica
        holds the lock, and takes over if that replica dies."""
        while True:
            lock = RedisLock(self.redis, self.lock_key, self.lock_ttl)
            if await lock.acquire():
                async with self._holding(lock):
                    return await self._reconcile()
            record = await self.load()  # the holder's, or an older one
            if record is not None:
                # Serve with it now; the holder may replace it, and the secret refresh
                # picks the new one up within seconds.
                return record
            await asyncio.sleep(WAIT_POLL)

    async def _acquire(self) -> RedisLock:
        while True:
            lock = RedisLock(self.redis, self.lock_key, self.lock_ttl)
            if await lock.acquire():
                return lock
            await asyncio.sleep(WAIT_POLL)

    @contextlib.asynccontextmanager
    async def _holding(self, lock: RedisLock) -> AsyncIterator[None]:
        """Keep ``lock`` while the block runs; every API call in it confirms it first."""
        async with lock.kept():
            self._lock = lock
            try:
                yield
            finally:
                self._lock = None

    async def _api(
        self,
        call: Callable[[], Awaitable[T]],
        what: str,
        before_retry: Callable[[], Awaitable[None]] | None = None,
    ) -> T:
        """An API call, retried while the API is unavailable; each attempt is made only
        while we still hold the lock (``LockLost`` otherwise)."""

        async def attempt() -> T:
            if self._lock is not None:
                await self._lock.confirm()
            return await call()

        return await with_retries(attempt, what=what, before_retry=before_retry)

    async def load(self) -> RegistrationRecord | None:
        return await load_record(self.redis, self.prefix, self.url, self.codec)

    async def _save(self, record: RegistrationRecord) -> None:
        await save_record(self.redis, self.prefix, record, self.codec)
        self.on_record(record)

    async def _ours(self) -> list[Webhook]:
        """The listed subscriptions for our URL (compared in canonical form)."""
        listed = await self._api(self.client.list_webhooks, "list webhooks")
        return [webhook for webhook in listed if same_url(webhook.url, self.url)]

    # --- the reconciliation ------------------------------------------------------------

    async def _reconcile(self) -> RegistrationRecord:
        stored = await self.load()
        ours = await self._ours()
        if stored is not None and self._still_good(stored, ours):
            log.info("subscription_reused", webhook_id=stored.id, url=self.url)
            record = stored
        else:
            reason = "no stored record" if stored is None else "stored subscription unusable"
            record = await self._replace(stored, ours, reason)
        handled = record.held_ids | (stored.held_ids if stored is not None else set())
        await self._delete_orphans([w for w in ours if w.id not in handled])
        return record

    def _still_good(self, record: RegistrationRecord, ours: list[Webhook]) -> bool:
        for webhook in ours:
            if webhook.id == record.id:
                return webhook.is_active and set(self.events) <= set(webhook.events)
        return False

    async def _replace(
        self, previous: RegistrationRecord | None, ours: list[Webhook], reason: str
    ) -> RegistrationRecord:
        """A new current subscription. A predecessor still listed as active (it lacks an
        event we now want) may still send retries: it retires with a grace period."""
        if previous is None:
            record = await self._subscribe([], keep=set())
            log.info("subscription_created", webhook_id=record.id, url=self.url, reason=reason)
            return record
        active = any(w.id == previous.id and w.is_active for w in ours)
        retiring = list(previous.retiring)
        if active:
            grace = RetiringSubscription(
                id=previous.id, secret=previous.secret, delete_after=time.time() + self.retire_grace
            )
            retiring.append(grace)
        record = await self._subscribe(retiring, keep=previous.held_ids)
        log.info(
            "subscription_created", webhook_id=record.id, url=self.url, reason=reason,
            previous=previous.id, previous_retires_s=self.retire_grace if active else None,
        )  # fmt: skip
        if not active:
            await self._delete(previous.id, "replaced")
        return record

    async def _subscribe(
        self, retiring: list[RetiringSubscription], *, keep: set[str]
    ) -> RegistrationRecord:
        """Create a subscription and store it as current, before anything can use it.

        ``keep``: the same-URL subscriptions whose secret we hold; any other one found after
        a create whose answer was lost is that create's doing, and is deleted before trying
        again, so that the URL ends with exactly one subscription.
        """

        async def delete_lost_creations() -> None:
            for webhook in await self._ours():
                if webhook.id not in keep:
                    await self._delete(webhook.id, "made by a create whose answer was lost")

        created = await self._api(
            lambda: self.client.create_webhook(self.url, self.events),
            "create webhook",
            before_retry=delete_lost_creations,
        )
        record = RegistrationRecord(
            id=created.id,
            url=self.url,
            events=created.events,
            secret=created.secret,
            created_at=created.created_at,
            retiring=retiring,
        )
        await self._save_or_undo(record)
        return record

    async def _save_or_undo(self, record: RegistrationRecord) -> None:
        """Store a new subscription's record; a subscription whose secret cannot be stored
        is deleted (its deliveries could never be verified), and the error raised."""
        failures = 0
        while True:
            try:
                if self._lock is not None:
                    await self._lock.confirm()  # lost: the new holder cleans up, not us
                await self._save(record)
                return
            except REDIS_DOWN as exc:
                failures += 1
                log.warning(
                    "registration_save_failed", webhook_id=record.id, attempt=failures,
                    error=type(exc).__name__,
                )  # fmt: skip
                if failures >= SAVE_ATTEMPTS:
                    log.error("registration_save_abandoned", webhook_id=record.id)
                    await self._delete(record.id, "its secret could not be stored")
                    raise
            await api.backoff_sleep(api.retry_delay(failures, base=0.2, cap=5.0))

    async def _delete_orphans(self, orphans: list[Webhook]) -> None:
        for webhook in orphans:
            # Its deliveries are signed with a secret nobody holds: they can only fail.
            await self._delete(webhook.id, "no secret held for it")

    async def _delete(self, webhook_id: str, reason: str) -> None:
        deleted = await self._api(lambda: self.client.delete_webhook(webhook_id), "delete webhook")
        log.info("subscription_deleted", webhook_id=webhook_id, reason=reason, existed=deleted)

    # --- operations --------------------------------------------------------------------

    async def rotate(self, grace: float | None) -> tuple[RegistrationRecord, str]:
        """A new subscription; the old one stays accepted for ``grace`` seconds (or is
        deleted now when ``grace`` is None). Returns the new record and the old id."""
        async with self._holding(await self._acquire()):
            current = await self.load()
            if current is None:
                raise ApiError(f"no subscription is registered for {self.url}: run relay register")
            retiring = list(current.retiring)
            if grace is not None:
                retiring.append(
                    RetiringSubscription(
                        id=current.id, secret=current.secret, delete_after=time.time() + grace
                    )
                )
            record = await self._subscribe(retiring, keep=current.held_ids)
            log.info("secret_rotated", webhook_id=record.id, previous=current.id, grace_s=grace)
            if grace is None:
                await self._delete(current.id, "rotated")
            return record, current.id

    async def retire_due(self) -> None:
        """Delete retiring subscriptions whose grace period is over."""
        record = await self.load()
        if record is None or not record.retiring_due(time.time()):
            return
        lock = RedisLock(self.redis, self.lock_key, self.lock_ttl)
        if not await lock.acquire():
            return  # another replica is at it
        async with self._holding(lock):
            record = await self.load()
            if record is None:
                return
            due = record.retiring_due(time.time())
            for old in due:
                await self._delete(old.id, "rotation grace period over")
            remaining = [o for o in record.retiring if o not in due]
            await self._save(record.model_copy(update={"retiring": remaining}))

    async def unregister(self) -> list[str]:
        """Delete our subscriptions upstream and the record; the ids deleted."""
        async with self._holding(await self._acquire()):
            record = await self.load()
            if record is None:
                return []
            ids = sorted(record.held_ids)
            for webhook_id in ids:
                await self._delete(webhook_id, "unregistered")
            await delete_record(self.redis, self.prefix, self.url)
            self.on_record(None)
            return ids
