"""A lean HTTP/1.1 client for the load runner's hot path: keep-alive connections that send prepared bytes.

A general client (aiohttp) spends about 150 µs of Python per request building the request (URL, headers, cookie
jar, connector bookkeeping) and parsing the answer, and all of it lies between the runner taking a request's
start time and the request leaving. Here every request is prepared once, before the run, as the bytes to write
(`prepare`); sending is `transport.write`, and the answer is parsed by httptools (the C parser uvicorn uses),
keeping only what the runner reads: the status, the body, and the `Idempotent-Replayed` and `Retry-After` headers.

Connections are kept alive and reused; a request opens a new one when none is idle (the callers bound how many
requests are in flight: one a virtual user, or `max_inflight`). Every request has a deadline, after which it
fails with `TimeoutError` and its connection is dropped. Errors are the builtin ones (`ConnectionRefusedError`,
`ConnectionResetError`, ...), and an answer the server cut off is `ServerDisconnected`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import NamedTuple
from urllib.parse import urlsplit

import httptools

from flashsale.contract import JSON_CONTENT_TYPE, REPLAYED_HEADER, RETRY_AFTER_HEADER

_REPLAYED = REPLAYED_HEADER.lower().encode()
_RETRY_AFTER = RETRY_AFTER_HEADER.lower().encode()


class ServerDisconnected(ConnectionError):
    """The server closed the connection before a whole answer arrived."""


class Answer(NamedTuple):
    status: int
    body: bytes
    replayed: bool  # the `Idempotent-Replayed: true` header
    retry_after: bytes | None = None  # the `Retry-After` header as sent (`contract.retry_after_s` reads it)


def prepare(method: str, host: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    """The bytes of one request, ready to write (JSON body, keep-alive)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    if body or method == "POST":
        lines += [f"Content-Type: {JSON_CONTENT_TYPE}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Connection(asyncio.Protocol):
    __slots__ = ("_body", "_parser", "_replayed", "_retry_after", "_waiter", "closed", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Answer] | None = None
        self._body: list[bytes] = []
        self._replayed = False
        self._retry_after: bytes | None = None
        self.closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ServerDisconnected(f"unparsable answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc if isinstance(exc, OSError) else ServerDisconnected("the server closed the connection"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == _REPLAYED:
            self._replayed = value == b"true"
        elif name == _RETRY_AFTER:
            self._retry_after = value

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        waiter = self._waiter
        self._waiter = None
        body = b"".join(self._body) if len(self._body) != 1 else self._body[0]
        answer = Answer(self._parser.get_status_code(), body, self._replayed, self._retry_after)
        self._body = []
        self._replayed = False
        self._retry_after = None
        if not self._parser.should_keep_alive():
            self.close()
        if waiter is not None and not waiter.done():
            waiter.set_result(answer)

    def send(self, data: bytes, waiter: asyncio.Future[Answer]) -> None:
        assert self.transport is not None, "sent on before it was connected"
        self._waiter = waiter
        self.transport.write(data)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        self._waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


class HttpClient:
    """Keep-alive connections to one `base_url` (http only); `await client.send(prepared)` returns an `Answer`."""

    def __init__(self, base_url: str, *, timeout_s: float = 10.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the load runner's client speaks plain http to one host, got {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.netloc = parts.netloc
        self.timeout_s = timeout_s
        self._idle: deque[_Connection] = deque()
        self._open: set[_Connection] = set()
        self._loop = asyncio.get_running_loop()

    def prepare(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
        return prepare(method, self.netloc, path, body, headers)

    async def send(self, data: bytes) -> Answer:
        """Write `data` (a prepared request) on an idle connection, or a new one, and wait for the answer."""
        loop = self._loop
        idle = self._idle
        conn = None
        while idle:
            conn = idle.pop()
            if not conn.closed:
                break
            conn = None
        if conn is None:
            conn = await self._connect()
        waiter = loop.create_future()
        timer = loop.call_later(self.timeout_s, _expire, waiter)
        conn.send(data, waiter)
        try:
            answer = await waiter
        except BaseException:
            conn.close()
            self._open.discard(conn)
            raise
        finally:
            timer.cancel()
        if conn.closed:
            self._open.discard(conn)
        else:
            idle.append(conn)
        return answer

    async def _connect(self) -> _Connection:
        _, conn = await asyncio.wait_for(
            self._loop.create_connection(_Connection, self.host, self.port), min(self.timeout_s, 5.0)
        )
        self._open.add(conn)
        return conn

    async def close(self) -> None:
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports close


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no answer in time"))
