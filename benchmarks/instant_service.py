"""A service that answers at once: the order service's contract with no work behind it, to measure the clients.

`GET /api/users` lists `--users` made-up ids (paged like the real service), `POST /api/orders` reads the body and
answers `409 {"error": "sold_out"}` at once (or after `--delay-ms`), `GET /health` answers 200. A bare ASGI
callable on uvicorn (uvloop + httptools), one process: what is left in a client's latency against it is the
client's own work, the loopback and this server's parsing, the same for every client measured against it.

    python benchmarks/instant_service.py --port 8765 [--users 1000] [--delay-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from urllib.parse import parse_qs

import uvicorn

SOLD_OUT = json.dumps({"error": "sold_out", "message": "sold out"}).encode()
JSON = [(b"content-type", b"application/json")]


def make_app(users: int, delay_s: float):
    ids = [str(uuid.UUID(int=i + 1)) for i in range(users)]

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        path, method = scope["path"], scope["method"]
        if path == "/api/orders" and method == "POST":
            while (await receive()).get("more_body"):
                pass
            if delay_s:
                await asyncio.sleep(delay_s)
            status, body = 409, SOLD_OUT
        elif path == "/api/users":
            query = parse_qs(scope["query_string"].decode())
            limit = int(query.get("limit", ["100"])[0])
            offset = int(query.get("offset", ["0"])[0])
            status = 200
            body = json.dumps({"user_ids": ids[offset : offset + limit], "total": len(ids)}).encode()
        elif path == "/health":
            status, body = 200, b'{"status": "ok"}'
        else:
            status, body = 404, b'{"error": "not_found"}'
        await send({"type": "http.response.start", "status": status, "headers": JSON})
        await send({"type": "http.response.body", "body": body})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    uvicorn.run(
        make_app(args.users, args.delay_ms / 1000),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        server_header=False,
        date_header=False,
    )


if __name__ == "__main__":
    main()
