"""Turns command-line values into client settings, and keeps secrets out of what is printed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import unquote, urlsplit, urlunsplit

import click

MASK = "***"
# A librdkafka property whose name holds one of these holds a secret (sasl.password,
# ssl.key.pem, sasl.oauthbearer.client.secret, sasl.oauthbearer.config, ssl.keystore.password,
# sasl.jaas.config...). Erring on the side of masking: an over-masked value costs nothing.
SECRET_MARKERS = (
    "password",
    "passphrase",
    "secret",
    "credential",
    "token",
    "jaas",
    "oauthbearer.config",
    ".pem",
    "key",
)
# ...unless the property names a file: ssl.key.location, sasl.kerberos.keytab and the like are
# paths, useful to an operator, and the file's content is not in the configuration.
PATH_SUFFIXES = (".location", ".keytab", ".file")
# Query parameters of a Redis URL that carry a password (redis-py reads ?password=...).
SECRET_QUERY_MARKERS = ("password", "secret", "token")


def is_secret_kafka_key(key: str) -> bool:
    name = key.strip().lower()
    if name.endswith(PATH_SUFFIXES):
        return False
    return any(marker in name for marker in SECRET_MARKERS)


class KafkaSetting(click.ParamType[str]):
    """One ``KEY=VALUE`` librdkafka setting of ``-X``/``--kafka-config``. Values may hold spaces;
    the environment variable holds one setting per line, or settings separated by ``;`` when it
    is a single line (click's own splitting, on whitespace, would cut such values apart)."""

    name = "KEY=VALUE"

    def split_envvar_value(self, rv: str) -> Sequence[str]:
        separator = "\n" if "\n" in rv else ";"
        return [item.strip() for item in rv.split(separator) if item.strip()]

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        key, sep, _ = value.partition("=")
        if not sep or not key.strip():
            # Never echo what may be a secret mistyped with another separator.
            shown = "a setting" if is_secret_kafka_key(value) else repr(value)
            self.fail(f"{shown} is not KEY=VALUE (e.g. security.protocol=SASL_SSL)", param, ctx)
        return value


def parse_kafka_config(pairs: Iterable[str]) -> dict[str, str]:
    """``KEY=VALUE`` librdkafka settings from ``--kafka-config``."""
    config: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            shown = "a setting" if is_secret_kafka_key(pair) else repr(pair)
            raise click.BadParameter(
                f"{shown} is not KEY=VALUE (e.g. security.protocol=SASL_SSL)",
                param_hint="--kafka-config",
            )
        config[key.strip()] = value
    return config


def build_kafka_config(
    bootstrap_servers: str,
    security_protocol: str | None,
    sasl_mechanism: str | None,
    sasl_username: str | None,
    sasl_password: str | None,
    ssl_ca_location: str | None,
    extra: Iterable[str],
) -> dict[str, str]:
    config = {"bootstrap.servers": bootstrap_servers}
    named = {
        "security.protocol": security_protocol,
        "sasl.mechanism": sasl_mechanism,
        "sasl.username": sasl_username,
        "sasl.password": sasl_password,
        "ssl.ca.location": ssl_ca_location,
    }
    config.update({key: value for key, value in named.items() if value})
    config.update(parse_kafka_config(extra))
    return config


def describe_kafka(config: Mapping[str, str]) -> str:
    """Kafka settings fit for a log line: secrets masked."""
    shown = {k: (MASK if is_secret_kafka_key(k) else v) for k, v in config.items()}
    return ", ".join(f"{k}={v}" for k, v in sorted(shown.items()))


def kafka_secrets(config: Mapping[str, str]) -> list[str]:
    """The secret values of a librdkafka configuration."""
    return [value for key, value in config.items() if is_secret_kafka_key(key) and value]


def redact_url(url: str) -> str:
    """A Redis URL with its password masked (user info and query), for logs and errors."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "<a Redis URL that does not parse>"  # it may hold a password anywhere
    netloc = parts.netloc
    if parts.password is not None:
        host = parts.hostname or ""
        if ":" in host:  # IPv6: hostname drops the brackets the URL needs
            host = f"[{host}]"
        netloc = f"{parts.username or ''}:{MASK}@{host}" + ("" if port is None else f":{port}")
    query = "&".join(_redact_query_item(item) for item in parts.query.split("&"))
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _redact_query_item(item: str) -> str:
    name, sep, _ = item.partition("=")
    if sep and _is_secret_query_name(name):
        return f"{name}={MASK}"
    return item


def _is_secret_query_name(name: str) -> bool:
    return any(marker in unquote(name).lower() for marker in SECRET_QUERY_MARKERS)


def redis_secrets(url: str, sentinel_password: str | None = None) -> list[str]:
    """The passwords a Redis URL (user info or query) and a Sentinel password hold, as written
    and percent-decoded."""
    found = [sentinel_password] if sentinel_password else []
    try:
        parts = urlsplit(url)
    except ValueError:
        return found
    if parts.password:
        found.append(parts.password)
    for item in parts.query.split("&"):
        name, sep, value = item.partition("=")
        if sep and value and _is_secret_query_name(name):
            found.append(value)
    return found + [unquote(value) for value in found if unquote(value) != value]
