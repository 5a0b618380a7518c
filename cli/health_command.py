"""``loginmetrics health``: ask this container's process whether it is alive (and ready), for a
container HEALTHCHECK; exit 0 or 1 with a one-line reason."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

import click

from loginmetrics.runtime.http_probe import LIVENESS_PATH, READINESS_PATH

PROBE_TIMEOUT_SECONDS = 3.0


def probe(port: int, path: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> tuple[bool, str]:
    """(healthy, the server's one-line reason) of ``path`` on this host's ``port``."""
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return True, response.read().decode(errors="replace").strip()
    except urllib.error.HTTPError as exc:
        return False, exc.read().decode(errors="replace").strip() or f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, f"no answer on port {port} ({reason})"


@click.command()
@click.option(
    "--port",
    "--metrics-port",
    "metrics_port",
    envvar="LOGINMETRICS_METRICS_PORT",
    show_envvar=True,
    type=click.IntRange(min=1, max=65535),
    default=None,
    help="The --metrics-port of the process to check.",
)
@click.option(
    "--ready",
    is_flag=True,
    help=f"Also require readiness ({READINESS_PATH}: partitions assigned and writing, or "
    "leading / standing by).",
)
def health(metrics_port: int | None, ready: bool) -> None:
    """Check the loginmetrics process serving --metrics-port on this host.

    Exit 0 when it is alive (its loops turn: /healthz), 1 otherwise, with the
    reason on one line. A process started without --metrics-port has nothing
    to check: that is reported and exits 0 (the generator, the printer).
    """
    if metrics_port is None:
        click.echo(
            "healthy: no metrics port configured (LOGINMETRICS_METRICS_PORT); nothing to check"
        )
        return
    paths = [LIVENESS_PATH, READINESS_PATH] if ready else [LIVENESS_PATH]
    for path in paths:
        ok, reason = probe(metrics_port, path)
        if not ok:
            click.echo(f"unhealthy: {path}: {reason}")
            sys.exit(1)
    click.echo(f"healthy: {reason}")
