"""Defaults shared by several settings classes and commands (one home for each); a default
that belongs to one settings class lives on that class."""

BOOTSTRAP_SERVERS = "localhost:9092"
REDIS_URL = "redis://localhost:6379/0"
INPUT_TOPIC = "user-login"
METRICS_TOPIC = "metric-event"
DLQ_TOPIC = "dead-letter-queue"
GROUP_ID = "loginmetrics"
# The name Redis Sentinel monitors the primary under (Sentinel's own example name).
REDIS_SENTINEL_MASTER = "mymaster"
