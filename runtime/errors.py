"""The exception hierarchy shared by every loginmetrics package."""


class LoginMetricsError(Exception):
    """Root of every error loginmetrics raises on purpose."""


class ConfigError(LoginMetricsError):
    """A setting is invalid; the message says which and what to use instead."""
