"""The load runner's lean HTTP client against a real loopback socket: a tiny asyncio server (`Peer`) answers each
request as a test tells it to, well or badly, and counts the connections it is given.

What is checked is what the runner relies on: answers come back whole on kept-alive connections, a connection the
server says it closes is never reused, and every way of not answering (a timeout, a disconnect, an answer cut off,
an answer that is not HTTP) is an error named by its class, never an answer, with the connection dropped; and
the http target turns each into an outcome, an answer whose body holds no order id included, without stopping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from uuid import UUID

import pytest

from flashsale.load.http_client import HttpClient, ServerDisconnected
from flashsale.load.outcomes import Outcomes
from flashsale.load.targets import HttpTarget
from flashsale.serving.server_process import free_port
from tests.waiting import until

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]
BODY = b'{"id": "00000000-0000-4000-8000-000000000001"}'
SHORT_TIMEOUT_S = 0.2  # the client's deadline where a test waits for it to pass (no assertion on how long it took)


def answer(status: str, body: bytes, *headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/json", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def created(body: bytes = BODY, *headers: str) -> bytes:
    return answer("201 Created", body, *headers)


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One whole request (its head, then the body its Content-Length announces); b"" when the client closed."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return b""
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
    )
    return head + await reader.readexactly(length)


class Peer:
    """A loopback server that runs `handler(reader, writer, connection number)` on each connection it accepts, and
    records the requests it read and which connections the client closed."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[bytes] = []
        self.connections = 0
        self.closed_by_client: set[int] = set()
        self.release = asyncio.Event()  # handlers that hold a connection open wait for it
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task] = set()
        self.url = ""

    async def __aenter__(self) -> Peer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = self.connections
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self.handler(reader, writer, number)
        finally:
            writer.close()
            self._handlers.discard(task)

    async def read(self, reader: asyncio.StreamReader) -> bytes:
        request = await read_request(reader)
        if request:
            self.requests.append(request)
        return request

    async def until_client_closes(self, reader: asyncio.StreamReader, number: int) -> None:
        """Hold the connection until the client closes it (recorded) or the test ends."""
        eof = asyncio.ensure_future(reader.read())
        release = asyncio.ensure_future(self.release.wait())
        done, _ = await asyncio.wait([eof, release], return_when=asyncio.FIRST_COMPLETED)
        if eof in done and eof.result() == b"":
            self.closed_by_client.add(number)
        eof.cancel()
        release.cancel()


def answering(*answers: bytes, then_hold: bool = False) -> Callable[[Peer], Handler]:
    """A handler that reads a request and writes the next of `answers`, for as long as the client sends; with
    `then_hold`, it stops reading after its answers and holds the connection open until the test ends."""

    def make(peer: Peer) -> Handler:
        async def handle(reader, writer, number):
            for answer in answers:
                if not await peer.read(reader):
                    return
                writer.write(answer)
                await writer.drain()
            if then_hold:
                await peer.release.wait()

        return handle

    return make


async def peer_with(make: Callable[[Peer], Handler]) -> Peer:
    peer = Peer(lambda *_: asyncio.sleep(0))
    peer.handler = make(peer)
    return peer


class TestAnswers:
    async def test_answers_come_back_whole_on_one_kept_alive_connection(self):
        replayed = created(BODY, "Idempotent-Replayed: true")
        refused = answer("409 Conflict", b'{"error":"sold_out"}')
        async with await peer_with(answering(created(), replayed, refused, created())) as peer:
            client = HttpClient(peer.url, timeout_s=10.0)
            request = client.prepare("POST", "/api/orders", b'{"user_id": "u"}', {"Idempotency-Key": "k-1"})
            answers = [await client.send(request) for _ in range(4)]
            await client.close()
        assert [(a.status, a.replayed) for a in answers] == [(201, False), (201, True), (409, False), (201, False)]
        assert [a.body for a in answers] == [BODY, BODY, b'{"error":"sold_out"}', BODY]
        assert peer.requests == [request] * 4  # the prepared bytes, as written
        assert b"Idempotency-Key: k-1\r\n" in request
        assert peer.connections == 1

    async def test_a_body_that_arrives_in_pieces_is_one_answer(self):
        async def handle(reader, writer, number):
            await peer.read(reader)
            answer = created()
            for piece in (answer[:10], answer[10:-5], answer[-5:]):
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0)

        async with Peer(handle) as peer:
            client = HttpClient(peer.url)
            answer = await client.send(client.prepare("GET", "/orders/x/status"))
            await client.close()
        assert (answer.status, answer.body) == (201, BODY)

    async def test_an_answer_with_connection_close_is_never_followed_by_another_request_on_it(self):
        """The server answers `Connection: close` and keeps the socket open without reading: a client that sent
        its next request there would wait for an answer that never comes."""
        async with await peer_with(answering(created(BODY, "Connection: close"), then_hold=True)) as peer:
            client = HttpClient(peer.url, timeout_s=10.0)
            request = client.prepare("GET", "/health")
            first = await client.send(request)
            second = await client.send(request)
            await client.close()
        assert (first.status, second.status) == (201, 201)
        assert peer.connections == 2
        assert len(peer.requests) == 2


class TestNoAnswer:
    async def test_no_answer_by_the_deadline_is_a_timeout_and_the_connection_is_dropped(self):
        async def handle(reader, writer, number):
            await peer.read(reader)
            if number == 0:  # the first connection gets no answer
                await peer.until_client_closes(reader, number)
                return
            writer.write(created())
            await writer.drain()
            await peer.until_client_closes(reader, number)

        async with Peer(handle) as peer:
            client = HttpClient(peer.url, timeout_s=SHORT_TIMEOUT_S)
            request = client.prepare("GET", "/health")
            with pytest.raises(TimeoutError):
                await client.send(request)
            await until(lambda: 0 in peer.closed_by_client, "the client to drop the connection that timed out")
            client.timeout_s = 10.0
            answer = await client.send(request)  # on a new connection
            await client.close()
        assert answer.status == 201
        assert peer.connections == 2

    async def test_a_server_that_closes_before_answering_is_server_disconnected(self):
        async def handle(reader, writer, number):
            await peer.read(reader)  # then close without a word

        async with Peer(handle) as peer:
            client = HttpClient(peer.url, timeout_s=10.0)
            with pytest.raises(ServerDisconnected, match="closed the connection"):
                await client.send(client.prepare("GET", "/health"))
            await client.close()
        assert len(peer.requests) == 1

    async def test_an_answer_cut_off_is_server_disconnected_not_an_answer(self):
        cut = created()[:-10]  # the head promises more body than comes

        async with await peer_with(answering(cut)) as peer:
            client = HttpClient(peer.url, timeout_s=10.0)
            with pytest.raises(ServerDisconnected):
                await client.send(client.prepare("GET", "/health"))
            await client.close()

    @pytest.mark.parametrize(
        "garbage",
        [b"HTTP/1.1 2O1 Created\r\nContent-Length: 0\r\n\r\n", b"SSH-2.0-OpenSSH_9.6\r\n\r\n"],
        ids=["bad-status", "not-http"],
    )
    async def test_a_malformed_answer_is_an_error_and_its_connection_is_dropped(self, garbage):
        async def handle(reader, writer, number):
            await peer.read(reader)
            writer.write(garbage if number == 0 else created())
            await writer.drain()
            await peer.until_client_closes(reader, number)

        async with Peer(handle) as peer:
            client = HttpClient(peer.url, timeout_s=10.0)
            request = client.prepare("GET", "/health")
            with pytest.raises(ServerDisconnected, match="unparsable answer"):
                await client.send(request)
            await until(lambda: 0 in peer.closed_by_client, "the client to drop the connection it could not parse")
            answer = await client.send(request)
            await client.close()
        assert answer.status == 201
        assert peer.connections == 2

    async def test_nobody_listening_is_connection_refused(self):
        client = HttpClient(f"http://127.0.0.1:{free_port()}", timeout_s=10.0)
        with pytest.raises(ConnectionRefusedError):
            await client.send(client.prepare("GET", "/health"))
        await client.close()


ORDER = UUID(int=7)
USERS = json.dumps({"user_ids": [str(UUID(int=1))], "total": 1}).encode()


def service(orders: Callable[[int], bytes]) -> Callable[[Peer], Handler]:
    """A handler that lists one user at `GET /api/users` and answers the n-th order with `orders(n)`."""

    def make(peer: Peer) -> Handler:
        async def handle(reader, writer, number):
            while request := await peer.read(reader):
                if request.startswith(b"GET /api/users"):
                    writer.write(answer("200 OK", USERS))
                else:
                    writer.write(orders(sum(r.startswith(b"POST") for r in peer.requests) - 1))
                await writer.drain()

        return handle

    return make


@contextlib.asynccontextmanager
async def http_target(peer: Peer, **options):
    target = HttpTarget(peer.url, UUID(int=9), outcomes=Outcomes(), timeout_s=10.0, poll_max_s=0.001, **options)
    await target.open()
    try:
        yield target
    finally:
        await target.close()


class TestHttpTarget:
    @pytest.mark.parametrize(
        ("status", "body", "error"),
        [
            ("201 Created", b"<html>oops</html>", "JSONDecodeError"),
            ("201 Created", b'{"status": "CONFIRMED"}', "KeyError"),
            ("202 Accepted", b'{"order_id": "not-a-uuid", "status": "pending"}', "ValueError"),
        ],
        ids=["not-json", "no-id", "bad-id"],
    )
    async def test_an_order_answer_without_an_order_id_is_an_error_and_the_next_order_still_goes(
        self, status, body, error
    ):
        """Against a service outside the contract: the answer is an error named by its class (with its status),
        nothing is acknowledged or accepted, and the target carries on (one failing request never stops a run)."""
        good = answer("201 Created", json.dumps({"id": str(ORDER)}).encode())
        peer = await peer_with(service(lambda n: answer(status, body) if n == 0 else good))
        async with peer, http_target(peer) as target:
            bad_outcome, bad_status = await target.order(0)
            good_outcome, _ = await target.order(0)
            names = target.outcomes.name(bad_outcome), target.outcomes.name(good_outcome)
            acknowledged, accepted = bytes(target.acknowledged), bytes(target.accepted)
        assert (names, bad_status) == ((error, "created"), int(status[:3]))
        assert acknowledged == ORDER.bytes  # the good order only
        assert accepted == b""

    async def test_a_connection_cut_is_the_outcome_server_disconnected(self):
        async def handle(reader, writer, number):
            request = await peer.read(reader)
            if request.startswith(b"GET /api/users"):
                writer.write(answer("200 OK", USERS, "Connection: close"))
            # an order: close without a word

        async with Peer(handle) as peer, http_target(peer) as target:
            outcome, status = await target.order(0)
            name = target.outcomes.name(outcome)
        assert (name, status) == ("ServerDisconnected", 0)


class TestRetryAfter:
    async def test_an_answer_keeps_its_retry_after_as_sent(self):
        refused = answer("429 Too Many Requests", b'{"error":"rate_limited"}', "retry-after: 2")
        async with await peer_with(answering(refused, created())) as peer:
            client = HttpClient(peer.url, timeout_s=10.0)
            request = client.prepare("POST", "/api/orders", b"{}")
            answers = [await client.send(request) for _ in range(2)]
            await client.close()
        assert [(a.status, a.retry_after) for a in answers] == [(429, b"2"), (201, None)]

    async def test_an_honouring_virtual_user_is_told_the_wait_its_last_answer_asked_for_at_most_the_cap(self):
        good = answer("201 Created", json.dumps({"id": str(ORDER)}).encode())
        answers = [
            answer("429 Too Many Requests", b'{"error":"rate_limited"}', "Retry-After: 2"),
            answer("503 Service Unavailable", b'{"error":"queue_full"}', "Retry-After: 120"),
            good,
            answer("503 Service Unavailable", b'{"error":"queue_full"}', "Retry-After: soon"),
        ]
        peer = await peer_with(service(lambda n: answers[n]))
        honouring = http_target(peer, honour_retry_after=True, retry_after_max_s=5.0)
        async with peer, honouring as target, target.session() as order:
            asked = []
            for _ in answers:
                await order(0)
                asked.append(order.retry_after_s())
        assert asked == [2.0, 5.0, 0.0, 0.0]

    async def test_a_virtual_user_that_does_not_honour_it_is_asked_for_no_wait(self):
        refused = answer("429 Too Many Requests", b'{"error":"rate_limited"}', "Retry-After: 2")
        peer = await peer_with(service(lambda n: refused))
        async with peer, http_target(peer) as target, target.session() as order:
            await order(0)
            assert not hasattr(order, "retry_after_s")
