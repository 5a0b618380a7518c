"""Logging setup for every loginmetrics process: text for people, JSON lines for collectors."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from loginmetrics.runtime.metrics import LogEventCounter

_STANDARD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


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
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = "INFO"
    format: str = "text"

    def configure(self) -> None:
        """Configure the root logger of this process (picklable: children call it after spawn)."""
        handler = logging.StreamHandler(sys.stderr)
        if self.format == "json":
            handler.setFormatter(JsonFormatter())
        else:
            handler.setFormatter(
                logging.Formatter(
                    "%(asctime)s %(levelname)-7s %(processName)s[%(process)d] %(name)s: %(message)s"
                )
            )
        root = logging.getLogger()
        root.handlers[:] = [handler, LogEventCounter()]
        root.setLevel(self.level.upper())
