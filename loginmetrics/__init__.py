"""loginmetrics: real-time sliding-window metrics over a Kafka stream of login events.

The subpackages are the repository's top-level folders: ``worker``, ``aggregator``, ``window``,
``cli`` and the base layer ``runtime`` under them."""
