"""A worker pool configured with secrets (librdkafka properties, a Redis password in the URL's
user info) runs on the real broker and Redis at DEBUG, in both log formats, and never prints one.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from loginmetrics.window import WindowLayout
from tests.support import (
    child_pids,
    consume,
    loginmetrics,
    pipeline_env,
    produce,
    wait_for_messages,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

LOGIN = {
    "user_id": "u-1",
    "app_version": "2.3.0",
    "ip": "10.0.0.1",
    "locale": "TX",
    "timestamp": 1736653976,
    "device_type": "android",
}


class Secrets:
    """Values unique to one test run: any of them in the output is a leak."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex
        self.redis_password = f"redis-pw-{tag}"
        self.sasl_password = f"sasl-pw-{tag}"
        self.oauth_secret = f"oauth-secret-{tag}"
        self.oauth_extension = f"ext-{tag}"
        self.key_material = f"KeyMaterial{tag}"

    @property
    def all(self) -> list[str]:
        return [
            self.redis_password,
            self.sasl_password,
            self.oauth_secret,
            self.oauth_extension,
            self.key_material,
        ]


@pytest.fixture
def redis_user(redis_url: str, redis_prefix: str) -> Iterator[tuple[str, str]]:
    """A Redis user with a password, allowed the test's prefix only: (name, password)."""
    name, password = f"test-{uuid.uuid4().hex}", f"redis-pw-{uuid.uuid4().hex}"
    admin = redis.Redis.from_url(redis_url)
    admin.acl_setuser(
        name,
        enabled=True,
        passwords=[f"+{password}"],
        keys=[f"{redis_prefix}:*"],
        commands=["+@all"],
    )
    try:
        yield name, password
    finally:
        admin.acl_deluser(name)
        admin.close()


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_worker_at_debug_never_prints_a_secret(
    log_format: str,
    kafka_bootstrap: str,
    redis_url: str,
    redis_prefix: str,
    redis_client: redis.Redis,
    redis_user: tuple[str, str],
    new_topic: Callable[..., str],
    unique_group_id: str,
    tmp_path: Path,
) -> None:
    secrets = Secrets()
    user, secrets.redis_password = redis_user
    parts = urlsplit(redis_url)
    host = f"{parts.hostname}:{parts.port or 6379}"
    source, dlq = new_topic(1), new_topic(1)
    env = pipeline_env(
        kafka_bootstrap,
        f"redis://{user}:{secrets.redis_password}@{host}{parts.path or '/0'}",
        redis_prefix,
        input_topic=source,
        dlq_topic=dlq,
        group_id=unique_group_id,
        log_level="DEBUG",
        log_format=log_format,
    )
    env["KAFKA_SASL_PASSWORD"] = secrets.sasl_password
    # One setting per line; the oauthbearer config holds a space (PLAINTEXT ignores all of it).
    env["LOGINMETRICS_KAFKA_CONFIG"] = (
        f"sasl.oauthbearer.client.secret={secrets.oauth_secret}\n"
        f"sasl.oauthbearer.config=principal=admin extension_x={secrets.oauth_extension}\n"
    )
    key_pem = f"-----BEGIN PRIVATE KEY-----\n{secrets.key_material}\n-----END PRIVATE KEY-----"
    log = tmp_path / "worker.log"
    produce(kafka_bootstrap, source, [(b"k1", json.dumps(LOGIN).encode()), (b"k2", b"not json")])

    with loginmetrics("worker", "-X", f"ssl.key.pem={key_pem}", env=env, log=log) as pool:
        totals = wait_for_messages(redis_client, WindowLayout(prefix=redis_prefix), 2, 60)
        workers = child_pids(pool.pid)
        letters = consume(kafka_bootstrap, dlq, 1)
        assert child_pids(pool.pid) == workers
    assert pool.returncode == 0

    assert (totals.valid, totals.invalid) == (1, 1)
    assert json.loads(letters[0])["error_code"] == "invalid_json"
    output = log.read_text()
    assert "exited with code" not in output
    assert "sasl.password=***" in output  # the startup line was written, masked
    assert "ssl.key.pem=***" in output
    assert f"redis://{user}:***@" in output
    if log_format == "json":
        lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        assert any(line["level"] == "DEBUG" for line in lines)
    else:
        assert " DEBUG " in output
    leaked = [secret for secret in secrets.all if secret in output]
    assert not leaked, f"printed: {leaked}"
