"""Options shared by several commands, defined once so they read the same everywhere."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from loginmetrics.cli.config import build_kafka_config
from loginmetrics.window import WindowLayout
from loginmetrics.window.errors import WindowConfigError
from loginmetrics.worker.validation import DEFAULT_MAX_MESSAGE_BYTES

F = TypeVar("F", bound=Callable[..., Any])


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
        return command(*args, **kwargs)

    return _apply(
        [
            _option(
                "--bootstrap-servers",
                envvar="KAFKA_BOOTSTRAP_SERVERS",
                default="localhost:9092",
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
                default=(),
                show_default=False,
                metavar="KEY=VALUE",
                help="Any other librdkafka setting; repeatable (env: space-separated).",
            ),
        ],
        wrapper,
    )


redis_url = _option(
    "--redis-url",
    envvar="REDIS_URL",
    default="redis://localhost:6379/0",
    help="Redis of the shared window; redis://:PASSWORD@host:port/db, rediss:// for TLS.",
)

input_topic = _option(
    "--input-topic", envvar="LOGINMETRICS_INPUT_TOPIC", default="user-login", help="Login events."
)
metrics_topic = _option(
    "--metrics-topic",
    envvar="LOGINMETRICS_METRICS_TOPIC",
    default="metric-event",
    help="Where metric events are produced.",
)
dlq_topic = _option(
    "--dlq-topic",
    envvar="LOGINMETRICS_DLQ_TOPIC",
    default="dead-letter-queue",
    help="Where unusable messages go, with the reason.",
)
group_id = _option(
    "--group-id", envvar="LOGINMETRICS_GROUP_ID", default="loginmetrics", help="Consumer group."
)
emit_interval = _option(
    "--emit-interval",
    envvar="LOGINMETRICS_EMIT_INTERVAL",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    help="Seconds between metric events.",
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
    default=10_000,
    help="Most messages taken from Kafka and applied to Redis in one step.",
)
max_message_bytes = _option(
    "--max-message-bytes",
    envvar="LOGINMETRICS_MAX_MESSAGE_BYTES",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_MESSAGE_BYTES,
    help="Larger messages go to the dead-letter queue as too_large.",
)


def window_layout(command: Callable[..., Any]) -> Callable[..., Any]:
    """Adds the window options and hands the command one validated ``layout``."""

    @functools.wraps(command)
    def wrapper(
        *args: Any, window: int, bucket_seconds: int, redis_prefix: str, **kwargs: Any
    ) -> Any:
        try:
            kwargs["layout"] = WindowLayout(
                prefix=redis_prefix, bucket_seconds=bucket_seconds, window_seconds=window
            )
        except WindowConfigError as exc:
            raise click.BadParameter(str(exc)) from exc
        return command(*args, **kwargs)

    return _apply(
        [
            _option(
                "--window",
                envvar="LOGINMETRICS_WINDOW",
                type=click.IntRange(min=1),
                default=300,
                help="Sliding window length in seconds (a multiple of --bucket-seconds).",
            ),
            _option(
                "--bucket-seconds",
                envvar="LOGINMETRICS_BUCKET_SECONDS",
                type=click.IntRange(min=1),
                default=1,
                help="Time bucket length in seconds (processing time, Redis clock).",
            ),
            _option(
                "--redis-prefix",
                envvar="LOGINMETRICS_REDIS_PREFIX",
                default="loginmetrics",
                help="Prefix of every Redis key of the window.",
            ),
        ],
        wrapper,
    )
