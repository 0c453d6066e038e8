"""The worker runtime: consumer groups, retry with backoff, dead letters.

```python
from relay.worker import Event, Worker

async def handle(event: Event) -> None:
    print(event.event, event.payload["data"]["extraction_id"], event.attempt)
```
"""

from relay.worker.event import Event
from relay.worker.retry import RetryPolicy
from relay.worker.runtime import Worker

__all__ = ["Event", "RetryPolicy", "Worker"]
