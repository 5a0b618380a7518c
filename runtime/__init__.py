"""The base layer under worker and aggregator: client factories, process supervision and
signals, backoff, the error root and the defaults shared by several settings."""
