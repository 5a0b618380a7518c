"""Errors of the shared window."""

from loginmetrics.runtime.errors import ConfigError


class WindowConfigError(ConfigError):
    """The window, bucket or emit interval settings do not fit together."""
