"""Creates the pipeline's topics on the broker at KAFKA_BOOTSTRAP_SERVERS; safe to rerun."""

from __future__ import annotations

import os
import sys

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

# Topic name -> partitions. user-login's partitions bound how many workers share the load.
TOPICS = {"user-login": 4, "metric-event": 1, "dead-letter-queue": 1}
TIMEOUT_S = 30.0


def create_topics(bootstrap_servers: str) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    new_topics = [
        NewTopic(name, num_partitions=n, replication_factor=1) for name, n in TOPICS.items()
    ]
    failures = 0
    for name, future in admin.create_topics(new_topics, request_timeout=TIMEOUT_S).items():
        try:
            future.result(timeout=TIMEOUT_S)
            print(f"topics: created {name} ({TOPICS[name]} partitions)")
        except KafkaException as exc:
            error = exc.args[0]
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                print(f"topics: {name} exists")
            else:
                print(f"topics: cannot create {name}: {exc}", file=sys.stderr)
                failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(create_topics(os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")))
