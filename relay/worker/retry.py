"""How long to wait before the next attempt."""

from __future__ import annotations

import random
from dataclasses import dataclass

from relay.options import WorkerOptions


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts an entry gets and how long to wait between them.

    Args:
        max_attempts: attempts before the entry moves to the dead-letter stream (>= 1).
        backoff_base: seconds of the first wait's ceiling; each failure doubles it...
        backoff_max: ...up to this many seconds.

    The defaults are the worker options' (:class:`relay.options.WorkerOptions`).
    """

    max_attempts: int = WorkerOptions.max_attempts
    backoff_base: float = WorkerOptions.backoff_base
    backoff_max: float = WorkerOptions.backoff_max

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_base < 0 or self.backoff_max < self.backoff_base:
            raise ValueError("need 0 <= backoff_base <= backoff_max")

    def delay(self, failed_attempt: int) -> float:
        """Capped exponential backoff with "equal jitter": between half and all of
        ``min(backoff_max, backoff_base * 2**(failed_attempt - 1))``, so retries of many
        entries that failed together spread out but never come back early."""
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** (failed_attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)
