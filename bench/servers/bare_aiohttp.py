"""(a) The framework's ceiling: aiohttp reading the body and answering 200."""

import os
import sys

from aiohttp import web


async def receive(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"status": "ok"})


app = web.Application()
app.router.add_post("/webhooks/anyformat", receive)

if __name__ == "__main__":
    loop = None
    if "--uvloop" in sys.argv:
        import uvloop

        loop = uvloop.new_event_loop()
    web.run_app(app, host="127.0.0.1", port=int(os.environ["PORT"]), print=None, loop=loop)
