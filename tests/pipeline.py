"""Moved to ``tests.support``; kept while tests/reliability/test_bad_input.py imports from here."""

from tests.support import (
    MetricEvents,
    child_pids,
    consume,
    current_totals,
    lease_holder_pid,
    loginmetrics,
    pipeline_env,
    produce,
    produce_one,
    topic_reader,
    wait_for_leaders,
    wait_for_messages,
)

__all__ = [
    "MetricEvents",
    "child_pids",
    "consume",
    "current_totals",
    "lease_holder_pid",
    "loginmetrics",
    "pipeline_env",
    "produce",
    "produce_one",
    "topic_reader",
    "wait_for_leaders",
    "wait_for_messages",
]
