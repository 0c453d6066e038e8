"""Exactly one AnyFormat subscription per public URL, however many replicas and restarts.

Every change happens under the URL's Redis lock: verify the stored subscription is still
listed (reuse it), else create one, store its secret before anything uses it, then delete
the subscriptions for this URL whose secret we do not hold. Subscriptions for other URLs
are never touched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

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
from relay.streams.keys import registration_key

log = structlog.get_logger("relay.registration")

LOCK_TTL = 30.0
WAIT_POLL = 0.25


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
    ) -> None:
        self.redis = redis
        self.client = client
        self.prefix = prefix
        self.url = public_url
        self.events = events
        self.codec = codec or SecretCodec()
        self.on_record = on_record
        self.lock_key = registration_key(prefix, public_url) + ":lock"
        self.lock_ttl = lock_ttl

    # --- coordination --------------------------------------------------------------------

    async def ensure(self) -> RegistrationRecord:
        """The subscription of our URL, verified or created; waits while another replica
        holds the lock, and takes over if that replica dies."""
        while True:
            lock = RedisLock(self.redis, self.lock_key, self.lock_ttl)
            if await lock.acquire():
                async with lock.kept():
                    return await self._reconcile()
            record = await self.load()  # the holder's, or an older one
            if record is not None:
                # Serve with it now; the holder may replace it, and the secret refresh
                # picks the new one up within seconds.
                return record
            await asyncio.sleep(WAIT_POLL)

    async def _under_lock(self) -> RedisLock:
        while True:
            lock = RedisLock(self.redis, self.lock_key, self.lock_ttl)
            if await lock.acquire():
                return lock
            await asyncio.sleep(WAIT_POLL)

    async def load(self) -> RegistrationRecord | None:
        return await load_record(self.redis, self.prefix, self.url, self.codec)

    async def _save(self, record: RegistrationRecord) -> None:
        await save_record(self.redis, self.prefix, record, self.codec)
        self.on_record(record)

    # --- the reconciliation ------------------------------------------------------------

    async def _reconcile(self) -> RegistrationRecord:
        record = await self.load()
        listed = await with_retries(self.client.list_webhooks, what="list webhooks")
        same_url = [webhook for webhook in listed if webhook.url == self.url]
        if record is not None and self._still_good(record, same_url):
            log.info("subscription_reused", webhook_id=record.id, url=self.url)
        else:
            reason = "no stored record" if record is None else "stored subscription gone"
            record = await self._create(record, reason)
        await self._delete_orphans(record, same_url)
        return record

    def _still_good(self, record: RegistrationRecord, same_url: list[Webhook]) -> bool:
        for webhook in same_url:
            if webhook.id == record.id:
                return webhook.is_active and set(self.events) <= set(webhook.events)
        return False

    async def _subscribe(self, retiring: list[RetiringSubscription]) -> RegistrationRecord:
        """Create a subscription and store it as current, before anything can use it."""
        created = await with_retries(
            lambda: self.client.create_webhook(self.url, self.events), what="create webhook"
        )
        record = RegistrationRecord(
            id=created.id,
            url=self.url,
            events=created.events,
            secret=created.secret,
            created_at=created.created_at,
            retiring=retiring,
        )
        await self._save(record)
        return record

    async def _create(self, previous: RegistrationRecord | None, reason: str) -> RegistrationRecord:
        record = await self._subscribe(retiring=[])
        log.info("subscription_created", webhook_id=record.id, url=self.url, reason=reason)
        if previous is not None:
            await self._delete(previous.id, "replaced")
            for old in previous.retiring:
                await self._delete(old.id, "replaced")
        return record

    async def _delete_orphans(self, record: RegistrationRecord, same_url: list[Webhook]) -> None:
        for webhook in same_url:
            if webhook.id not in record.held_ids:
                # Its deliveries are signed with a secret nobody holds: they can only fail.
                await self._delete(webhook.id, "no secret held for it")

    async def _delete(self, webhook_id: str, reason: str) -> None:
        deleted = await with_retries(
            lambda: self.client.delete_webhook(webhook_id), what="delete webhook"
        )
        log.info("subscription_deleted", webhook_id=webhook_id, reason=reason, existed=deleted)

    # --- operations --------------------------------------------------------------------

    async def rotate(self, grace: float | None) -> tuple[RegistrationRecord, str]:
        """A new subscription; the old one stays accepted for ``grace`` seconds (or is
        deleted now when ``grace`` is None). Returns the new record and the old id."""
        lock = await self._under_lock()
        async with lock.kept():
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
            record = await self._subscribe(retiring)
            log.info("secret_rotated", webhook_id=record.id, previous=current.id, grace_s=grace)
            if grace is None:
                await self._delete(current.id, "rotated")
            return record, current.id

    async def retire_due(self) -> None:
        """Delete retiring subscriptions whose grace period is over."""
        record = await self.load()
        now = time.time()
        if record is None or not any(
            old.delete_after is not None and old.delete_after <= now for old in record.retiring
        ):
            return
        lock = RedisLock(self.redis, self.lock_key, self.lock_ttl)
        if not await lock.acquire():
            return  # another replica is at it
        async with lock.kept():
            record = await self.load()
            if record is None:
                return
            due = [
                o for o in record.retiring if o.delete_after is not None and o.delete_after <= now
            ]
            for old in due:
                await self._delete(old.id, "rotation grace period over")
            remaining = [o for o in record.retiring if o not in due]
            await self._save(record.model_copy(update={"retiring": remaining}))

    async def unregister(self) -> list[str]:
        """Delete our subscriptions upstream and the record; the ids deleted."""
        lock = await self._under_lock()
        async with lock.kept():
            record = await self.load()
            if record is None:
                return []
            ids = sorted(record.held_ids)
            for webhook_id in ids:
                await self._delete(webhook_id, "unregistered")
            await delete_record(self.redis, self.prefix, self.url)
            self.on_record(None)
            return ids

    async def maintain(self, recheck_interval: float, retire_interval: float = 5.0) -> None:
        """In the background of a serving relay: finish rotations, re-verify now and then."""
        next_check = time.monotonic() + recheck_interval
        while True:
            await asyncio.sleep(retire_interval)
            try:
                await self.retire_due()
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + recheck_interval
                    await self.ensure()
            except (ApiError, RedisError) as exc:
                # Serving goes on with the stored secret; try again at the next round.
                log.error("registration_maintenance_failed", error=str(exc))
