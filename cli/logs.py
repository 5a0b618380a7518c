"""Logging setup for every loginmetrics process: text for people, JSON lines for collectors."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import click

from loginmetrics.runtime.metrics import LogEventCounter

_STANDARD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# Shorter values are not searched for in log lines: masking every "abc" would garble them. Such a
# secret is still masked wherever configuration is described (cli/config.py); only this second
# line of defence skips it.
MIN_REDACTED_CHARS = 4
REDACTED = "***"

# The log format this process was configured with ("text" until LogSettings.configure runs).
_log_format = "text"

# The secret values this process was configured with (passwords, keys, tokens).
_secrets: set[str] = set()
# ... and every form a log line may show them in: as is, repr()-escaped, JSON-escaped.
_secret_forms: list[str] = []


def register_secrets(values: Iterable[str | None]) -> None:
    """Values no log line of this process may show, whatever logged them and at any level."""
    new = {value for value in values if value and len(value) >= MIN_REDACTED_CHARS} - _secrets
    if not new:
        return
    _secrets.update(new)
    forms = set(_secret_forms)
    for value in new:
        forms |= {value, repr(value)[1:-1], json.dumps(value)[1:-1]}
        forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
    # Longest first: a secret that contains another is masked whole.
    _secret_forms[:] = sorted(forms, key=len, reverse=True)


def registered_secrets() -> tuple[str, ...]:
    return tuple(sorted(_secrets))


def redact(text: str) -> str:
    for form in _secret_forms:
        if form in text:
            text = text.replace(form, REDACTED)
    return text


class SecretFilter(logging.Filter):
    """Masks every registered secret in a record before it is formatted: its message with the
    arguments merged in, its exception and stack text, and its extra fields. Before, so that a
    secret escaped once by whoever logged it (repr, JSON) is still recognised; the JSON
    formatter then escapes the masked text again."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secret_forms:
            return True
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and isinstance(value, str):
                setattr(record, key, redact(value))
        return True


class RedactingFormatter(logging.Formatter):
    """Formats with ``inner``, then masks every registered secret left in the finished line
    (in an extra field that is not a string, say): the second line of defence."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self._inner.format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra= fields (partition, offsets, ...) become keys."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "process": record.processName,
            "pid": record.process,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES:
                document[key] = value
        if record.exc_text:  # set, and secrets masked, by SecretFilter
            document["exception"] = record.exc_text
        elif record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = "INFO"
    format: str = "text"
    # Secrets to mask in this process's logs, on top of those it registers itself: how a
    # spawned child learns the ones its parent read from the command line.
    secrets: tuple[str, ...] = ()

    def with_registered_secrets(self) -> LogSettings:
        """These settings carrying every secret registered so far, for a child process."""
        return dataclasses.replace(self, secrets=registered_secrets())

    def configure(self) -> None:
        """Configure the root logger of this process (picklable: children call it after spawn)."""
        global _log_format
        _log_format = self.format
        register_secrets(self.secrets)
        handler = logging.StreamHandler(sys.stderr)
        if self.format == "json":
            handler.setFormatter(RedactingFormatter(JsonFormatter()))
        else:
            handler.setFormatter(
                RedactingFormatter(
                    logging.Formatter(
                        "%(asctime)s %(levelname)-7s %(processName)s[%(process)d] %(name)s: "
                        "%(message)s"
                    )
                )
            )
        handler.addFilter(SecretFilter())
        root = logging.getLogger()
        root.handlers[:] = [handler, LogEventCounter()]
        root.setLevel(self.level.upper())


class CommandError(click.ClickException):
    """Why a command cannot go on (a broker not reachable at the start, a topic missing):
    click's ``Error: ...`` line in text logs, one ERROR log line in ``--log-format json``, so
    that a log pipeline parses a failed start too."""

    def show(self, file: IO[Any] | None = None) -> None:
        if _log_format != "json":
            super().show(file)
            return
        logging.getLogger("loginmetrics.cli").error("%s", self.format_message())
