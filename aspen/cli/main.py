"""`aspen-cli`: the shell client. Exit codes, in one table: 0 ok; 1 failure (an error from the
cluster, a domain failure, bad local input such as a malformed ticket); 2 usage error."""

from __future__ import annotations

import sys

import click

from aspen import __version__
from aspen.api.errors import AspenError
from aspen.cli.cluster import cluster_group
from aspen.cli.context import Settings, _merge, global_options
from aspen.cli.kv import kv_group
from aspen.rpc.ticket import TicketError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@global_options
@click.version_option(__version__, prog_name="aspen-cli")
@click.pass_context
def cli(ctx: click.Context, /, **kwargs: object) -> None:
    """Aspen: a linearizable key-value and blob store. Talks to a cluster named by a ticket."""
    settings = _merge(ctx, dict(kwargs))
    if settings.verbose:
        click.echo(f"aspen-cli v{__version__}", err=True)


cli.add_command(kv_group)
cli.add_command(cluster_group)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="aspen-cli", standalone_mode=False, obj=Settings())
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(EXIT_FAILURE)
    except click.UsageError as err:
        err.show()
        sys.exit(EXIT_USAGE)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except AspenError as err:
        click.echo(f"Error: {err}", err=True)
        sys.exit(EXIT_FAILURE)
    except TicketError as err:
        click.echo(f"Error: invalid ticket: {err}", err=True)
        sys.exit(EXIT_FAILURE)
    sys.exit(EXIT_OK)
