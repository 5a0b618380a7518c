"""Options shared by several commands, defined once so they read the same everywhere.

Defaults are not written here: each is read from the settings class that owns it (or from
``runtime.defaults`` for the connection settings every command shares)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from loginmetrics.aggregator.api_parameters import ParameterError, parse_duration
from loginmetrics.aggregator.http_api import ApiSettings
from loginmetrics.aggregator.settings import AggregatorSettings
from loginmetrics.cli.config import (
    KafkaSetting,
    build_kafka_config,
    kafka_secrets,
    redis_secrets,
)
from loginmetrics.cli.logs import register_secrets
from loginmetrics.runtime import defaults
from loginmetrics.runtime.clients import SentinelConfig, parse_addresses
from loginmetrics.runtime.errors import ConfigError
from loginmetrics.runtime.http_probe import DEFAULT_METRICS_ADDRESS
from loginmetrics.window import WindowLayout
from loginmetrics.window.event_time import EventTimePolicy
from loginmetrics.window.layout import TRACKED_VALUES, TimeBasis
from loginmetrics.worker.settings import WorkerSettings

F = TypeVar("F", bound=Callable[..., Any])


def default(settings: type[Any], name: str) -> Any:
    """The default ``settings`` (a dataclass) gives its field ``name``."""
    for field in dataclasses.fields(settings):
        if field.name == name:
            if field.default is not dataclasses.MISSING:
                return field.default
            if field.default_factory is not dataclasses.MISSING:
                return field.default_factory()
    raise LookupError(f"{settings.__name__} has no default for {name!r}")


def _option(*decls: str, envvar: str, **kwargs: Any) -> Callable[[F], F]:
    kwargs.setdefault("show_default", True)
    return click.option(*decls, envvar=envvar, show_envvar=True, **kwargs)


def _apply(options: list[Callable[[F], F]], function: F) -> F:
    for option in reversed(options):
        function = option(function)
    return function


def kafka_connection(command: Callable[..., Any]) -> Callable[..., Any]:
    """Adds the Kafka connection options and hands the command one ``kafka`` config dict."""

    @functools.wraps(command)
    def wrapper(
        *args: Any,
        bootstrap_servers: str,
        security_protocol: str | None,
        sasl_mechanism: str | None,
        sasl_username: str | None,
        sasl_password: str | None,
        ssl_ca_location: str | None,
        kafka_config: tuple[str, ...],
        **kwargs: Any,
    ) -> Any:
        kwargs["kafka"] = build_kafka_config(
            bootstrap_servers,
            security_protocol,
            sasl_mechanism,
            sasl_username,
            sasl_password,
            ssl_ca_location,
            kafka_config,
        )
        register_secrets(kafka_secrets(kwargs["kafka"]))
        return command(*args, **kwargs)

    return _apply(
        [
            _option(
                "--bootstrap-servers",
                envvar="KAFKA_BOOTSTRAP_SERVERS",
                default=defaults.BOOTSTRAP_SERVERS,
                help="Kafka brokers, host:port[,host:port...].",
            ),
            _option(
                "--security-protocol",
                envvar="KAFKA_SECURITY_PROTOCOL",
                type=click.Choice(["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]),
                default=None,
                help="Kafka security protocol (librdkafka security.protocol).",
            ),
            _option(
                "--sasl-mechanism",
                envvar="KAFKA_SASL_MECHANISM",
                default=None,
                help="SASL mechanism, e.g. PLAIN, SCRAM-SHA-512.",
            ),
            _option(
                "--sasl-username", envvar="KAFKA_SASL_USERNAME", default=None, help="SASL user."
            ),
            _option(
                "--sasl-password",
                envvar="KAFKA_SASL_PASSWORD",
                default=None,
                show_default=False,
                help="SASL password; prefer the environment variable. Never logged.",
            ),
            _option(
                "--ssl-ca-location",
                envvar="KAFKA_SSL_CA_LOCATION",
                default=None,
                type=click.Path(dir_okay=False),
                help="CA certificate file for SSL/SASL_SSL.",
            ),
            _option(
                "--kafka-config",
                "-X",
                envvar="LOGINMETRICS_KAFKA_CONFIG",
                multiple=True,
                type=KafkaSetting(),
                default=(),
                show_default=False,
                help="Any other librdkafka setting; repeatable. Values may contain spaces; in the "
                "environment variable put one KEY=VALUE per line, or separate them with ';' on "
                "a single line. Secrets (passwords, keys, tokens, .pem) are never logged.",
            ),
        ],
        wrapper,
    )


def redis_connection(command: Callable[..., Any]) -> Callable[..., Any]:
    """Adds the Redis options and hands the command ``redis_url`` and ``redis_sentinel``
    (a ``SentinelConfig``, or None to connect to ``--redis-url`` directly)."""

    @functools.wraps(command)
    def wrapper(
        *args: Any,
        redis_sentinel: str | None,
        redis_sentinel_master: str,
        redis_sentinel_password: str | None,
        **kwargs: Any,
    ) -> Any:
        sentinel = None
        if redis_sentinel:
            with bad_parameters():
                sentinel = SentinelConfig(
                    parse_addresses(redis_sentinel),
                    redis_sentinel_master,
                    redis_sentinel_password or None,
                )
        kwargs["redis_sentinel"] = sentinel
        register_secrets(redis_secrets(kwargs["redis_url"], redis_sentinel_password))
        return command(*args, **kwargs)

    return _apply(
        [
            _option(
                "--redis-url",
                envvar="REDIS_URL",
                default=defaults.REDIS_URL,
                help="Redis of the shared window; redis://[user]:PASSWORD@host:port/db, "
                "rediss:// for TLS. With --redis-sentinel only its user, password, db and TLS "
                "are used.",
            ),
            _option(
                "--redis-sentinel",
                envvar="LOGINMETRICS_REDIS_SENTINEL",
                default=None,
                metavar="HOST:PORT[,HOST:PORT...]",
                help="Find the Redis primary through these Sentinels (and follow failovers).",
            ),
            _option(
                "--redis-sentinel-master",
                envvar="LOGINMETRICS_REDIS_SENTINEL_MASTER",
                default=defaults.REDIS_SENTINEL_MASTER,
                help="The name the Sentinels monitor the primary under.",
            ),
            _option(
                "--redis-sentinel-password",
                envvar="LOGINMETRICS_REDIS_SENTINEL_PASSWORD",
                default=None,
                show_default=False,
                help="Password of the Sentinels themselves (the primary's is in --redis-url); "
                "prefer the environment variable. Never logged.",
            ),
        ],
        wrapper,
    )


input_topic = _option(
    "--input-topic",
    envvar="LOGINMETRICS_INPUT_TOPIC",
    default=default(WorkerSettings, "input_topic"),
    help="Login events.",
)
metrics_topic = _option(
    "--metrics-topic",
    envvar="LOGINMETRICS_METRICS_TOPIC",
    default=default(AggregatorSettings, "metrics_topic"),
    help="Where metric events are produced.",
)
dlq_topic = _option(
    "--dlq-topic",
    envvar="LOGINMETRICS_DLQ_TOPIC",
    default=default(WorkerSettings, "dlq_topic"),
    help="Where unusable messages go, with the reason.",
)
group_id = _option(
    "--group-id",
    envvar="LOGINMETRICS_GROUP_ID",
    default=default(WorkerSettings, "group_id"),
    help="Consumer group.",
)
emit_interval = _option(
    "--emit-interval",
    envvar="LOGINMETRICS_EMIT_INTERVAL",
    type=click.FloatRange(min=0, min_open=True),
    default=default(AggregatorSettings, "emit_interval_seconds"),
    help="Seconds between metric events.",
)
metrics_port = _option(
    "--metrics-port",
    envvar="LOGINMETRICS_METRICS_PORT",
    type=click.IntRange(min=1, max=65535),
    default=None,
    help="Serve Prometheus metrics at /metrics, and the /healthz and /readyz probes, on this "
    "port (of --metrics-address); off when unset. A worker pool serves all its processes' "
    "figures.",
)
metrics_address = _option(
    "--metrics-address",
    envvar="LOGINMETRICS_METRICS_ADDRESS",
    default=DEFAULT_METRICS_ADDRESS,
    show_default="every interface, IPv4 and IPv6",
    metavar="HOST",
    help="Interface (IP address or host name) --metrics-port listens on, e.g. 127.0.0.1 for "
    "this host only; empty for every interface.",
)
processes = _option(
    "--processes",
    envvar="LOGINMETRICS_PROCESSES",
    type=click.IntRange(min=1),
    default=1,
    help="Worker processes (one Kafka consumer each) in the group.",
)

batch_size = _option(
    "--batch-size",
    envvar="LOGINMETRICS_BATCH_SIZE",
    type=click.IntRange(min=1),
    default=default(WorkerSettings, "batch_size"),
    help="Most messages taken from Kafka and applied to Redis in one step.",
)
max_message_bytes = _option(
    "--max-message-bytes",
    envvar="LOGINMETRICS_MAX_MESSAGE_BYTES",
    type=click.IntRange(min=1),
    default=default(WorkerSettings, "max_message_bytes"),
    help="Larger messages go to the dead-letter queue as too_large.",
)
max_field_bytes = _option(
    "--max-field-bytes",
    envvar="LOGINMETRICS_MAX_FIELD_BYTES",
    type=click.IntRange(min=1),
    default=default(WorkerSettings, "max_field_bytes"),
    help="Longest user_id, app_version, ip, locale or device_type in UTF-8 bytes; longer ones "
    "go to the dead-letter queue as value_too_long.",
)


def window_layout(command: Callable[..., Any]) -> Callable[..., Any]:
    """Adds the window options and hands the command one validated ``layout``."""

    @functools.wraps(command)
    def wrapper(
        *args: Any,
        window: int,
        bucket_seconds: int,
        redis_prefix: str,
        time_basis: str,
        retention: int,
        max_delay: float,
        allowed_lateness: float,
        max_future: float,
        idle_after: float,
        **kwargs: Any,
    ) -> Any:
        with bad_parameters():
            kwargs["layout"] = WindowLayout(
                prefix=redis_prefix,
                bucket_seconds=bucket_seconds,
                window_seconds=window,
                time_basis=TimeBasis(time_basis),
                retention_seconds=retention,
                event_time=EventTimePolicy(
                    max_delay_seconds=max_delay,
                    allowed_lateness_seconds=allowed_lateness,
                    max_future_seconds=max_future,
                    idle_after_seconds=idle_after,
                ),
            )
        return command(*args, **kwargs)

    return _apply(
        [
            _option(
                "--window",
                envvar="LOGINMETRICS_WINDOW",
                type=click.IntRange(min=1),
                default=default(WindowLayout, "window_seconds"),
                help="Sliding window length in seconds (a multiple of --bucket-seconds).",
            ),
            _option(
                "--bucket-seconds",
                envvar="LOGINMETRICS_BUCKET_SECONDS",
                type=click.IntRange(min=1),
                default=default(WindowLayout, "bucket_seconds"),
                help="Time bucket length in seconds.",
            ),
            _option(
                "--time-basis",
                envvar="LOGINMETRICS_TIME_BASIS",
                type=click.Choice([basis.value for basis in TimeBasis]),
                default=default(WindowLayout, "time_basis").value,
                help="Which time puts a message in its bucket: 'processing', when a worker "
                "applies it (Redis clock), or 'event', its payload timestamp (windows stay "
                "right through a backlog; see docs/event-time.md). Every process of a window "
                "must agree.",
            ),
            _option(
                "--retention",
                envvar="LOGINMETRICS_RETENTION",
                type=click.IntRange(min=1),
                default=default(WindowLayout, "retention_seconds"),
                help="Seconds of minute and hour buckets kept: the oldest range 'query' and the "
                "HTTP API can answer.",
            ),
            _option(
                "--max-delay",
                envvar="LOGINMETRICS_MAX_DELAY",
                type=click.FloatRange(min=0),
                default=default(EventTimePolicy, "max_delay_seconds"),
                help="Event time: seconds a partition's watermark trails its newest event, for "
                "messages that arrive a little out of order; each window closes this much after "
                "its end.",
            ),
            _option(
                "--allowed-lateness",
                envvar="LOGINMETRICS_ALLOWED_LATENESS",
                type=click.FloatRange(min=0),
                default=default(EventTimePolicy, "allowed_lateness_seconds"),
                help="Event time: a message behind the watermark by up to this many seconds still "
                "counts, and the windows already emitted with it are emitted again (revision + "
                "1); later ones go to the dead-letter queue as too_late.",
            ),
            _option(
                "--max-future",
                envvar="LOGINMETRICS_MAX_FUTURE",
                type=click.FloatRange(min=0),
                default=default(EventTimePolicy, "max_future_seconds"),
                help="Event time: a timestamp more than this many seconds ahead of the Redis "
                "clock goes to the dead-letter queue as future_timestamp.",
            ),
            _option(
                "--idle-after",
                envvar="LOGINMETRICS_IDLE_AFTER",
                type=click.FloatRange(min=0),
                default=default(EventTimePolicy, "idle_after_seconds"),
                help="Event time: a partition caught up with its log for this many seconds is "
                "idle and holds no window back.",
            ),
            _option(
                "--redis-prefix",
                envvar="LOGINMETRICS_REDIS_PREFIX",
                default=default(WindowLayout, "prefix"),
                help="Prefix of every Redis key of the window.",
            ),
        ],
        wrapper,
    )


lease_seconds = _option(
    "--lease-seconds",
    envvar="LOGINMETRICS_LEASE_SECONDS",
    type=click.FloatRange(min=1),
    default=default(AggregatorSettings, "lease_seconds"),
    help="Leadership lease of the active aggregator; a standby takes over within ~4/3 of it "
    "after the leader dies.",
)


max_distribution_values = _option(
    "--max-distribution-values",
    envvar="LOGINMETRICS_MAX_DISTRIBUTION_VALUES",
    type=click.IntRange(min=1, max=TRACKED_VALUES),
    default=default(AggregatorSettings, "max_distribution_values"),
    help="Most values a metric event lists per distribution (largest first); the rest is "
    'summed under "__other__".',
)


# How `status` and `offsets show` print: one spelling for both.
output_format = click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people, json for scripts.",
)


@contextmanager
def bad_parameters() -> Iterator[None]:
    """A settings class's own check failing is the user's bad parameter."""
    try:
        yield
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from exc


def worker_settings(command: Callable[..., Any]) -> Callable[..., Any]:
    """Adds the worker's own options and hands the command ``worker_settings``: the one place a
    ``WorkerSettings`` is built from the command line. Goes below ``kafka_connection``,
    ``redis_connection`` and ``window_layout``, whose values it reads (and leaves in place)."""

    @functools.wraps(command)
    def wrapper(
        *args: Any,
        input_topic: str,
        dlq_topic: str,
        group_id: str,
        batch_size: int,
        max_message_bytes: int,
        max_field_bytes: int,
        **kwargs: Any,
    ) -> Any:
        with bad_parameters():
            kwargs["worker_settings"] = WorkerSettings(
                kafka=dict(kwargs["kafka"]),
                redis_url=kwargs["redis_url"],
                redis_sentinel=kwargs["redis_sentinel"],
                layout=kwargs["layout"],
                input_topic=input_topic,
                dlq_topic=dlq_topic,
                group_id=group_id,
                batch_size=batch_size,
                max_message_bytes=max_message_bytes,
                max_field_bytes=max_field_bytes,
            )
        return command(*args, **kwargs)

    return _apply(
        [input_topic, dlq_topic, group_id, batch_size, max_message_bytes, max_field_bytes],
        wrapper,
    )


class WindowLengths(click.ParamType[tuple[int, ...]]):
    """``1m,5m,1h``: window lengths, each a duration (s, m, h, d; bare numbers are seconds)."""

    name = "LENGTHS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        if not str(value).strip():
            return ()  # the default: --window alone
        try:
            return tuple(parse_duration(part, "--windows") for part in str(value).split(","))
        except ParameterError as exc:
            self.fail(str(exc), param, ctx)


windows_option = _option(
    "--windows",
    envvar="LOGINMETRICS_WINDOWS",
    type=WindowLengths(),
    default="",
    show_default="--window alone",
    help="Window lengths to publish each tick, e.g. 1m,5m,1h: one metric event per length (its "
    "window_seconds says which), all read from one bucket store. Each at most --window, the "
    "second buckets the workers keep.",
)


def aggregator_settings(command: Callable[..., Any]) -> Callable[..., Any]:
    """Adds the aggregator's own options and hands the command ``aggregator_settings``: the one
    place an ``AggregatorSettings`` is built from the command line. Goes below the connection
    and window options, and below ``worker_settings`` (``run``) or above ``input_topic``
    (``aggregate``)."""

    @functools.wraps(command)
    def wrapper(
        *args: Any,
        metrics_topic: str,
        emit_interval: float,
        lease_seconds: float,
        max_distribution_values: int,
        windows: tuple[int, ...],
        **kwargs: Any,
    ) -> Any:
        # `aggregate` takes --input-topic itself (event time reads its partitions' watermarks);
        # `run` shares the workers' one.
        topic = kwargs.pop("input_topic", None)
        if topic is None:
            topic = kwargs["worker_settings"].input_topic
        with bad_parameters():
            kwargs["aggregator_settings"] = AggregatorSettings(
                kafka=dict(kwargs["kafka"]),
                redis_url=kwargs["redis_url"],
                redis_sentinel=kwargs["redis_sentinel"],
                layout=kwargs["layout"],
                input_topic=topic,
                metrics_topic=metrics_topic,
                emit_interval_seconds=emit_interval,
                lease_seconds=lease_seconds,
                max_distribution_values=max_distribution_values,
                windows=windows,
            )
        return command(*args, **kwargs)

    return _apply(
        [metrics_topic, emit_interval, lease_seconds, max_distribution_values, windows_option],
        wrapper,
    )


def http_api(command: Callable[..., Any]) -> Callable[..., Any]:
    """Adds the HTTP API's options and hands the command ``api_settings`` (without the Kafka
    side of its status, which the command adds: it knows the input topic and group)."""

    @functools.wraps(command)
    def wrapper(
        *args: Any, http_port: int | None, http_address: str, history: int, **kwargs: Any
    ) -> Any:
        kwargs["api_settings"] = ApiSettings(
            port=http_port, address=http_address, history_seconds=history
        )
        return command(*args, **kwargs)

    return _apply(
        [
            _option(
                "--http-port",
                envvar="LOGINMETRICS_HTTP_PORT",
                type=click.IntRange(min=1, max=65535),
                default=None,
                help="Serve the HTTP API (/api/v1/window, /api/v1/events, /api/v1/status) and the "
                "live page (/) on this port (of --http-address); off when unset.",
            ),
            _option(
                "--http-address",
                envvar="LOGINMETRICS_HTTP_ADDRESS",
                default=default(ApiSettings, "address"),
                show_default="every interface, IPv4 and IPv6",
                metavar="HOST",
                help="Interface --http-port listens on, e.g. 127.0.0.1 for this host only; empty "
                "for every interface.",
            ),
            _option(
                "--history",
                envvar="LOGINMETRICS_HISTORY",
                type=click.IntRange(min=1),
                default=default(ApiSettings, "history_seconds"),
                help="Seconds of published metric events kept in Redis for /api/v1/events.",
            ),
        ],
        wrapper,
    )
