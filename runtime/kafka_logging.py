"""librdkafka's reports through Python logging: its errors (``error_cb``) worded for an operator,
its own log lines (``logger``), each kind at most once per interval."""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError

logger = logging.getLogger(__name__)

# librdkafka reports a lasting problem (a broker down, a refused login) on every retry, several
# times a second: one line per kind of problem in this long is enough for an operator.
KAFKA_REPORT_SECONDS = 10.0
# How long a reachability probe waits for one address to accept, and how long its verdict holds
# (librdkafka can report a failed connection twenty times a second).
PROBE_TIMEOUT_SECONDS = 1.0
PROBE_VERDICT_SECONDS = 2.0
# Errors about reaching a broker at all: what "not reachable" is judged on.
CONNECTION_ERRORS = (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE)
# librdkafka's log facilities whose lines repeat what error_cb reports (FAIL: one line per failed
# connection attempt; ERROR: its own copy of an error when no error_cb is set): at DEBUG, since
# kafka_error_logger says it once, judged on every address of the broker.
ERROR_CB_FACILITIES = frozenset({"FAIL", "ERROR"})
# "sasl_ssl://broker-1:9093/2: Connect to ..." or "[::1]:9092/bootstrap: ...": the broker an
# error is about, and whether it is a bootstrap entry or a broker the cluster told us of.
_BROKER_NAME = re.compile(r"^(?:[a-z_]+://)?(?P<server>\S+?)/(?P<node>[^\s:/]+): ")

Address = tuple[str, int]
Resolver = Callable[[str, int], Sequence[tuple[int, Any]]]


def split_servers(servers: str) -> list[Address]:
    """``host:port[,host:port...]`` as librdkafka takes it; IPv6 hosts in brackets."""
    addresses = []
    for item in filter(None, (part.strip() for part in servers.split(","))):
        host, _, port = item.rpartition(":")
        if host and port.isdigit():
            addresses.append((host.removeprefix("[").removesuffix("]"), int(port)))
    return addresses


def on_loopback(hosts: Sequence[str]) -> bool:
    """Whether every host is this machine (so the local stack's `make stack-up` is the fix)."""

    def loopback(host: str) -> bool:
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    return bool(hosts) and all(loopback(host) for host in hosts)


def resolve_stream(host: str, port: int) -> Sequence[tuple[int, Any]]:
    """Every (family, socket address) of ``host`` in the resolver's order, as librdkafka sees."""
    return [(info[0], info[4]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


class KafkaReach:
    """Whether the Kafka an error is about answers at any of its addresses: the broker the error
    names, or every bootstrap server when it names a bootstrap entry or none. One address that
    refuses (``localhost`` resolving to ``::1`` first, with a broker on 127.0.0.1 only) is not
    an unreachable broker: librdkafka tries the next one."""

    def __init__(
        self,
        bootstrap: str,
        resolve: Resolver = resolve_stream,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = PROBE_TIMEOUT_SECONDS,
    ) -> None:
        self._bootstrap = split_servers(bootstrap)
        self._resolve = resolve
        self._clock = clock
        self._timeout = timeout
        self._verdicts: dict[tuple[Address, ...], tuple[float, bool]] = {}

    def subject(self, error_text: str) -> list[Address]:
        named = _BROKER_NAME.match(error_text)
        if named is None or named["node"] == "bootstrap":
            return self._bootstrap
        return split_servers(named["server"]) or self._bootstrap

    def answers(self, error_text: str) -> bool:
        servers = tuple(self.subject(error_text))
        now = self._clock()
        checked_at, verdict = self._verdicts.get(servers, (-PROBE_VERDICT_SECONDS, False))
        if now - checked_at < PROBE_VERDICT_SECONDS:
            return verdict
        verdict = any(self._accepts(host, port) for host, port in servers)
        self._verdicts[servers] = (now, verdict)
        return verdict

    def _accepts(self, host: str, port: int) -> bool:
        try:
            addresses = self._resolve(host, port)
        except OSError:
            return False
        for family, address in addresses:
            try:
                with socket.socket(family, socket.SOCK_STREAM) as probe:
                    probe.settimeout(self._timeout)
                    probe.connect(address)
            except OSError:  # refused, timed out, or no such family on this machine
                continue
            return True
        return False


class ReportLimiter:
    """Lets each kind of report through at most once per ``interval``; counts the rest."""

    def __init__(
        self, interval: float = KAFKA_REPORT_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._last: dict[object, float] = {}
        self._suppressed: dict[object, int] = {}

    def admit(self, kind: object) -> str | None:
        """None when this report is to be dropped; else what to append to it: how many of its
        kind were dropped since the last one (empty when none)."""
        now = self._clock()
        if now - self._last.get(kind, -self._interval) < self._interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return None
        self._last[kind] = now
        again = self._suppressed.pop(kind, 0)
        return f" (and {again} more times since the last report)" if again else ""


def kafka_error_logger(
    bootstrap: str,
    clock: Callable[[], float] = time.monotonic,
    reach: KafkaReach | None = None,
) -> Callable[[KafkaError], None]:
    """librdkafka's ``error_cb``, worded for an operator, each kind of error at most once per
    ``KAFKA_REPORT_SECONDS`` (the lines in between are counted in the next one). "Not
    reachable" (an ERROR) only when no address of the broker accepts a connection; a failure
    while another address answers is librdkafka trying them in turn (DEBUG), or a dropped
    connection it re-opens (WARNING)."""
    limiter = ReportLimiter(KAFKA_REPORT_SECONDS, clock)
    reach = reach if reach is not None else KafkaReach(bootstrap, clock=clock)
    hosts = [host for host, _port in split_servers(bootstrap)]
    hint = " Locally: `make stack-up`" if on_loopback(hosts) else ""

    def log_error(error: KafkaError) -> None:
        code, text = error.code(), error.str()
        if code in CONNECTION_ERRORS:
            if not reach.answers(text):
                kind: object = "unreachable"
            elif code == KafkaError._ALL_BROKERS_DOWN or "Connect to" in text:
                kind = "another address answered"
            else:
                kind = "connection lost"
        else:
            kind = code
        repeated = limiter.admit(kind)
        if repeated is None:
            return
        if kind == "unreachable":
            logger.error(
                "Kafka at %s not reachable (%s)%s; is the broker running?%s",
                bootstrap,
                text,
                repeated,
                hint,
            )
        elif kind == "another address answered":
            logger.debug("Kafka at %s: %s; another address answers%s", bootstrap, text, repeated)
        elif kind == "connection lost":
            logger.warning("Kafka at %s: %s; reconnecting%s", bootstrap, text, repeated)
        elif code == KafkaError._AUTHENTICATION:
            logger.error(
                "Kafka at %s refused the login (%s)%s; check the SASL user, password and "
                "mechanism (KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, KAFKA_SASL_MECHANISM)",
                bootstrap,
                text,
                repeated,
            )
        else:
            logger.error("Kafka error: %s%s", text, repeated)

    return log_error


class LibrdkafkaLogger:
    """librdkafka's ``logger``: its own log lines into Python logging (logger ``librdkafka``,
    so the configured format applies: JSON stays JSON), each facility at most once per
    ``KAFKA_REPORT_SECONDS``. Lines that repeat what ``error_cb`` reports go at DEBUG."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logging.getLogger("librdkafka")
        self._limiter = ReportLimiter(KAFKA_REPORT_SECONDS, clock)

    def log(self, level: int, message: str, *args: Any) -> None:
        # confluent-kafka calls log(level, "%s [%s] %s", facility, client name, text).
        facility = str(args[0]) if args else ""
        if facility in ERROR_CB_FACILITIES:
            level = logging.DEBUG
        if not self._logger.isEnabledFor(level):
            return
        repeated = self._limiter.admit(facility)
        if repeated is not None:
            self._logger.log(level, message + "%s", *args, repeated)
