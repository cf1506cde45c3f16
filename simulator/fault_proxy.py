"""A fault-injecting HTTP/1.1 proxy between the boxes and the receiver, for the load test and the tests:
the network of a polling day, where connections drop and answers get lost.

Per request it asks `decide()` for a fault, or None to forward it faithfully:

- ``drop``: close the box's connection without forwarding (the request is lost);
- ``timeout``: hold the request past the box's timeout, then forward it and close (stored, but the box
  never hears so);
- ``server_error``: answer 503 without forwarding;
- ``drop_answer``: forward, then close instead of answering (stored, answer lost);
- ``duplicate``: deliver twice at once on two connections (a retransmission racing the original) and
  answer with one of the two; both answers must carry the same receipt (counted in
  ``receipts_differ``).

Requests must carry Content-Length (no chunked bodies); the receiver's answers always do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import Counter
from collections.abc import Callable

FAULTS = ("drop", "timeout", "server_error", "drop_answer", "duplicate")
MAX_HEAD = 64 * 1024
_SERVER_ERROR_BODY = b'{"error": "injected", "detail": "503 from the fault proxy"}'
SERVER_ERROR = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(_SERVER_ERROR_BODY)).encode() + b"\r\n\r\n" + _SERVER_ERROR_BODY)


class FaultProxy:
    def __init__(self, upstream_port: int, decide: Callable[[], str | None], *, hold_s: float,
                 upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.decide = decide
        self.hold_s = hold_s
        self.counts: Counter[str] = Counter()
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._serve_client, host, port, limit=MAX_HEAD, backlog=1024)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop taking connections; requests still held (timeout faults) are forwarded first."""
        pending = [t for t in self._handlers if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=self.hold_s + 5.0)
        if self._server is not None:
            self._server.close()
            self._server = None
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        try:
            while True:
                request = await _read_message(reader)
                if request is None:
                    return
                fault = self.decide()
                self.counts[fault or "forwarded"] += 1
                if fault == "drop":
                    return
                if fault == "server_error":
                    writer.write(SERVER_ERROR)
                    await writer.drain()
                    continue
                if fault == "timeout":
                    await asyncio.sleep(self.hold_s)
                    await self._forward_quietly(request)
                    return
                if fault == "duplicate":
                    first, second = await asyncio.gather(self._forward(request), self._forward(request))
                    if _receipt_id(first) != _receipt_id(second):
                        self.counts["receipts_differ"] += 1
                    answer = second
                else:
                    answer = await self._forward(request)
                if fault == "drop_answer":
                    return
                writer.write(answer)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            self.counts["proxy_connection_errors"] += 1
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _forward_quietly(self, request: bytes) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, OSError):
            await self._forward(request)

    async def _forward(self, request: bytes) -> bytes:
        """Send to the receiver on an idle kept-alive connection (or a new one) and read the answer."""
        for reuse in (True, False):
            reader, writer = (self._idle.pop() if reuse and self._idle
                              else await asyncio.open_connection(*self.upstream, limit=MAX_HEAD))
            try:
                writer.write(request)
                await writer.drain()
                answer = await _read_message(reader)
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                answer = None
            if answer is not None:
                self._idle.append((reader, writer))
                return answer
            writer.close()  # an idle connection the receiver had closed: once more on a fresh one
        raise ConnectionError("the receiver closed the connection without answering")


async def _read_message(reader: asyncio.StreamReader) -> bytes | None:
    """One HTTP/1.1 request or response with a Content-Length body; None at a clean end of stream."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise
        return None
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return head + (await reader.readexactly(length) if length else b"")


def _receipt_id(answer: bytes) -> str | None:
    _, _, body = answer.partition(b"\r\n\r\n")
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value.get("receipt_id") if isinstance(value, dict) else None


class ProxyThread:
    """The proxy on its own event loop in a thread (tests): `with ProxyThread(...) as port:`."""

    def __init__(self, upstream_port: int, decide: Callable[[], str | None], *, hold_s: float = 1.0) -> None:
        self.proxy = FaultProxy(upstream_port, decide, hold_s=hold_s)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> int:
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self.proxy.start(), self.loop).result(10)

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
