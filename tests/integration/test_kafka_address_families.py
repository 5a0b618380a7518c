"""A bootstrap whose first address refuses (``localhost`` resolving to ``::1`` first, with a
broker on 127.0.0.1 only) costs a worker nothing: it counts every message and logs no ERROR.
The refusing address is named explicitly, so the test does not depend on this machine's
/etc/hosts."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from loginmetrics.window import WindowLayout
from tests.support import loginmetrics, pipeline_env, produce, wait_for_messages

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

MESSAGES = 20


def refusing_ipv6_address() -> str:
    """``[::1]:PORT`` where nothing listens (a free port on 127.0.0.1 is taken as likely free
    on ::1 as well, and checked)."""
    for _ in range(20):
        with socket.create_server(("127.0.0.1", 0)) as probe:
            port = probe.getsockname()[1]
        try:
            with socket.create_connection(("::1", port), timeout=0.5):
                continue
        except OSError:
            return f"[::1]:{port}"
    pytest.fail("no free port on ::1")


def test_a_worker_whose_bootstrap_refuses_on_ipv6_first_logs_no_error(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: redis.Redis,
    redis_prefix: str,
    unique_group_id: str,
    new_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    refusing = refusing_ipv6_address()
    source, dlq = new_topic(1), new_topic(1)
    login = {"user_id": "u", "app_version": "2.3.0", "ip": "10.0.0.1", "locale": "TX"}
    messages = [
        (b"k", json.dumps({**login, "device_type": "iOS", "timestamp": 1_736_653_976 + n}).encode())
        for n in range(MESSAGES)
    ]
    produce(kafka_bootstrap, source, messages)
    env = pipeline_env(
        f"{refusing},{kafka_bootstrap}",
        redis_url,
        redis_prefix,
        input_topic=source,
        dlq_topic=dlq,
        group_id=unique_group_id,
        log_format="json",
        log_level="DEBUG",
    )
    log = tmp_path / "worker.log"
    with loginmetrics("worker", "--processes", "1", env=env, log=log) as pool:
        totals = wait_for_messages(
            redis_client, WindowLayout(prefix=redis_prefix), MESSAGES, timeout=60
        )
    assert pool.returncode == 0
    assert totals.valid == MESSAGES
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert [r for r in records if r["level"] == "ERROR"] == []
    # The refusing address was tried, and judged: another address answered.
    assert any(refusing in r["message"] for r in records)
