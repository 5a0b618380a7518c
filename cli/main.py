"""The ``loginmetrics`` click group: global options and the list of commands."""

from __future__ import annotations

import click

from loginmetrics.cli.aggregate_command import aggregate
from loginmetrics.cli.generate_command import generate
from loginmetrics.cli.health_command import health
from loginmetrics.cli.logs import LogSettings
from loginmetrics.cli.offsets_command import offsets
from loginmetrics.cli.print_command import print_messages
from loginmetrics.cli.query_command import query
from loginmetrics.cli.run_command import run
from loginmetrics.cli.status_command import status
from loginmetrics.cli.topics_command import topics
from loginmetrics.cli.worker_command import worker


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--log-level",
    envvar="LOGINMETRICS_LOG_LEVEL",
    show_envvar=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    show_default=True,
    help="Least severe log level written to stderr.",
)
@click.option(
    "--log-format",
    envvar="LOGINMETRICS_LOG_FORMAT",
    show_envvar=True,
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people, json for one object per line.",
)
@click.version_option(package_name="loginmetrics")
@click.pass_context
def cli(ctx: click.Context, log_level: str, log_format: str) -> None:
    """Real-time sliding-window metrics over a Kafka stream of login events.

    \b
    Workers consume login events, validate them and add them to a shared
    window in Redis, exactly once; the aggregator publishes the window's
    totals as metric events; unusable messages go to the dead-letter queue.

    \b
    Quick start (local Kafka and Redis: `make stack-up`):
      loginmetrics generate &                # ~2 login events per second
      loginmetrics worker --processes 2 &
      loginmetrics aggregate &
      loginmetrics print --topic metric-event
    """
    logs = LogSettings(level=log_level.upper(), format=log_format)
    logs.configure()
    ctx.obj = logs


cli.add_command(worker)
cli.add_command(print_messages)
cli.add_command(generate)
cli.add_command(run)
cli.add_command(aggregate)
cli.add_command(topics)
cli.add_command(health)
cli.add_command(status)
cli.add_command(offsets)
cli.add_command(query)


def main() -> None:
    cli(prog_name="loginmetrics")
