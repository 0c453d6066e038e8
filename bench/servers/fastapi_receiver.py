"""(b) The receiver a user writes by hand: FastAPI on uvicorn, `standardwebhooks` verify,
SET NX EX then two XADDs with redis.asyncio."""

import os

import redis.asyncio as redis
from fastapi import FastAPI, Request, Response
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

app = FastAPI()
webhook = Webhook(os.environ["SECRET"])
client = redis.Redis.from_url(os.environ["REDIS_URL"])


@app.post("/webhooks/anyformat", response_model=None)
async def receive(request: Request) -> Response | dict[str, str]:
    body = await request.body()
    try:
        event = webhook.verify(body, dict(request.headers))
    except WebhookVerificationError:
        return Response(status_code=401)
    message_id = request.headers["webhook-id"]
    if not await client.set(f"seen:{message_id}", 1, nx=True, ex=604800):
        return {"status": "duplicate", "id": message_id}
    fields = {"id": message_id, "event": event["event"], "payload": body}
    await client.xadd("anyformat:events", fields)
    await client.xadd(f"anyformat:events:{event['event']}", fields)
    return {"status": "accepted", "id": message_id}
