"""Errors of the shared window."""

from loginmetrics.runtime.errors import ConfigError, LoginMetricsError


class WindowConfigError(ConfigError):
    """The window, bucket or emit interval settings do not fit together."""


class BadRangeError(LoginMetricsError):
    """A time range that cannot be read: empty, or reversed."""


class RangeOutOfRetentionError(BadRangeError):
    """A time range that starts before the oldest bucket kept (--retention), or ends in the
    future."""
