"""A small HTTP/1.0 server for GET endpoints (the probes, ``/metrics``, the aggregator's API and
page) that idle or slow clients cannot exhaust: one event loop holds every connection, a few
threads build the answers."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qsl, urlsplit

logger = logging.getLogger(__name__)

# A scraper or a kubelet sends its whole request at once; a client still silent after this is
# idle or hostile, and its connection is closed.
REQUEST_HEAD_SECONDS = 5.0
# Prometheus' default scrape_timeout: a client that takes longer to read the answer has gone.
REPLY_SECONDS = 10.0
# Open connections at most. One more evicts the oldest one still waiting for its request, so a
# crowd of idle connections never locks out a probe, and file descriptors stay bounded (the
# process's Kafka and Redis clients need them too).
MAX_CONNECTIONS = 128
MAX_HEAD_BYTES = 8192
# Threads that build answers (a /metrics answer of a pool reads every process's files). Nothing
# else ever runs in them, so no client, however slow, can hold one.
ANSWER_THREADS = 2
EVERY_INTERFACE = ""
# How a connection ends without an answer: silent past its deadline, closed by the client or
# evicted, or a request head over MAX_HEAD_BYTES.
GONE = (TimeoutError, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str  # without the query string
    headers: Mapping[str, str]  # names in lower case
    # The query string's parameters, percent-decoded; each name at most once.
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reply:
    status: HTTPStatus
    content_type: str
    body: bytes
    # More header lines (name, value); Content-Type, Content-Length and Connection are written
    # from the fields above.
    headers: tuple[tuple[str, str], ...] = ()


Answer = Callable[[Request], Reply]

NOT_ALLOWED = Reply(HTTPStatus.METHOD_NOT_ALLOWED, "text/plain; charset=utf-8", b"GET only\n")
JSON = "application/json"


def error_reply(status: HTTPStatus, reason: str) -> Reply:
    """``{"error": reason}``: what a script (or the page) reads when it asked wrongly."""
    return Reply(status, JSON, json.dumps({"error": reason}).encode() + b"\n")


class MalformedRequestError(ValueError):
    """A request head this server does not take; the message says why."""


def parse_head(head: bytes) -> Request:
    """The request a head (request line and headers) asks for; ``MalformedRequestError`` says why
    it cannot be taken (a malformed request line, a query parameter given twice)."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise MalformedRequestError("malformed request line")
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    target = urlsplit(parts[1])
    query: dict[str, str] = {}
    for name, value in parse_qsl(target.query, keep_blank_values=True):
        if name in query:
            # Which one would count is a guess either way (frameworks differ): refuse both.
            raise MalformedRequestError(f"parameter {name!r} given more than once")
        query[name] = value
    return Request(parts[0], target.path, headers, query)


def encode_reply(reply: Reply, with_body: bool) -> bytes:
    extra = "".join(f"{name}: {value}\r\n" for name, value in reply.headers)
    head = (
        f"HTTP/1.0 {reply.status.value} {reply.status.phrase}\r\n"
        f"Content-Type: {reply.content_type}\r\n"
        f"Content-Length: {len(reply.body)}\r\n"
        f"{extra}"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + (reply.body if with_body else b"")


class BoundedHttpServer:
    """Answers each connection's one GET with ``answer``, from a daemon thread.

    ``address`` is a host name or IP literal; ``EVERY_INTERFACE`` binds every IPv4 and IPv6
    interface the host has (as Prometheus exporters do)."""

    def __init__(
        self,
        address: str,
        port: int,
        answer: Answer,
        *,
        name: str = "http",
        answer_threads: int = ANSWER_THREADS,
    ) -> None:
        self._address = address
        self._requested_port = port
        self._answer = answer
        self._name = name
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._answers = ThreadPoolExecutor(answer_threads, thread_name_prefix=f"{name}-answer")
        self._ready = threading.Event()
        self._failure: OSError | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ports: list[int] = []
        # Every open connection's writer, by its task; the ones still waiting for their
        # request, oldest first (a dict keeps insertion order).
        self._open: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._waiting: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    @property
    def port(self) -> int:
        """The bound port (the one the OS chose when asked for port 0)."""
        return self._ports[0]

    def start(self) -> None:
        """Bind and serve; raises the OSError of a bind that failed (a port in use)."""
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise self._failure

    def close(self) -> None:
        """Stop serving and close every connection."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join()
        self._answers.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve_until_stopped())
        except OSError as exc:
            self._failure = exc
        finally:
            self._ready.set()
            loop.close()

    async def _serve_until_stopped(self) -> None:
        self._stop = asyncio.Event()
        servers = await self._listen()
        self._ready.set()
        await self._stop.wait()
        for server in servers:
            server.close()
        for writer in self._open.values():
            writer.transport.abort()
        await asyncio.gather(*self._open, return_exceptions=True)

    async def _listen(self) -> list[asyncio.Server]:
        """Bind ``address``; every interface is one IPv4 and one IPv6 wildcard socket on the
        same port (asyncio alone would give each its own port when asked for port 0)."""
        ipv4 = "0.0.0.0"  # noqa: S104 - every interface is what EVERY_INTERFACE asks for
        first = await self._start(self._address or ipv4, self._requested_port)
        self._ports = [sock.getsockname()[1] for sock in first.sockets]
        if self._address or not socket.has_ipv6:
            return [first]
        try:
            return [first, await self._start("::", self.port)]
        except OSError as exc:
            if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                return [first]  # IPv6 is disabled on this host
            first.close()
            raise

    async def _start(self, host: str, port: int) -> asyncio.Server:
        return await asyncio.start_server(self._connected, host, port, limit=MAX_HEAD_BYTES)

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._open) >= MAX_CONNECTIONS and not self._make_room():
            writer.transport.abort()  # every connection is being answered: refuse this one
            return
        self._open[task] = self._waiting[task] = writer
        try:
            await self._exchange(task, reader, writer)
        except GONE:
            pass  # idle, gone, evicted or oversized: nothing to answer
        finally:
            self._waiting.pop(task, None)
            del self._open[task]
            writer.transport.abort()  # nothing left to send: no lingering close

    def _make_room(self) -> bool:
        """Evict the connection that has waited longest for its request; False if none waits."""
        if not self._waiting:
            return False
        oldest = next(iter(self._waiting))
        self._waiting.pop(oldest).transport.abort()
        return True

    async def _exchange(
        self,
        task: asyncio.Task[None],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        # LimitOverrunError when the head exceeds MAX_HEAD_BYTES.
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_HEAD_SECONDS)
        self._waiting.pop(task, None)  # being answered: no longer evictable
        try:
            request = parse_head(head)
        except MalformedRequestError as exc:
            writer.write(encode_reply(error_reply(HTTPStatus.BAD_REQUEST, str(exc)), True))
        else:
            if request.method not in ("GET", "HEAD"):
                reply = NOT_ALLOWED
            else:
                loop = asyncio.get_running_loop()
                reply = await loop.run_in_executor(self._answers, self._answer_safely, request)
            writer.write(encode_reply(reply, with_body=request.method != "HEAD"))
        await asyncio.wait_for(writer.drain(), REPLY_SECONDS)

    def _answer_safely(self, request: Request) -> Reply:
        try:
            return self._answer(request)
        except Exception:
            logger.exception("%s: answering %s failed", self._name, request.path)
            return Reply(
                HTTPStatus.INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8", b"internal error\n"
            )
