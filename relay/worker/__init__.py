"""The worker runtime: consumer groups, retry with backoff, dead letters.

```python
from relay.worker import Event, Reject, Retry

async def handle(event: Event) -> None:
    if "extraction_id" not in event.payload["data"]:
        raise Reject("no extraction id")  # straight to the dead-letter stream
    ...  # return: acknowledged; raise anything: retried; raise Retry(after=30): in 30 s
```
"""

from relay.worker.controls import Reject, Retry
from relay.worker.event import Event
from relay.worker.retry import RetryPolicy
from relay.worker.runtime import Handler, Lifespan, Worker

__all__ = ["Event", "Handler", "Lifespan", "Reject", "Retry", "RetryPolicy", "Worker"]
