"""`aspen-cli`: the shell client. Exit codes, in one table: 0 ok; 1 failure (an error from the
cluster, a domain failure, bad local input such as a malformed ticket); 2 usage error.

Input the shell passes but no request can carry (a key that is not valid UTF-8, an integer
beyond 64 bits) is refused by the client before anything is sent, as an INVALID_REQUEST error:
exit 1, one line. No exception reaches the user as a traceback.

Every option can come from the environment: the global ones from ASPEN_TICKET, ASPEN_JSON,
ASPEN_TIMEOUT, ASPEN_VERBOSE, ASPEN_QUIET; a command's own from ASPEN_<GROUP>_<COMMAND>_<OPTION>
(click's `auto_envvar_prefix`), e.g. ASPEN_KV_SCAN_LIMIT."""

from __future__ import annotations

import functools
import sys

import click
from click.shell_completion import get_completion_class

from aspen import __version__
from aspen.api.errors import AspenError
from aspen.cli import barrier as _barrier_printers  # noqa: F401  (each registers its printer)
from aspen.cli import counter as _counter_printers  # noqa: F401
from aspen.cli import lock as _lock_printers  # noqa: F401
from aspen.cli import queue as _queue_printers  # noqa: F401
from aspen.cli import ratelimit as _ratelimit_printers  # noqa: F401
from aspen.cli import rwlock as _rwlock_printers  # noqa: F401
from aspen.cli import semaphore as _semaphore_printers  # noqa: F401
from aspen.cli import service as _service_printers  # noqa: F401
from aspen.cli.blob import blob_group
from aspen.cli.cluster import cluster_group
from aspen.cli.context import Settings, _merge, global_options
from aspen.cli.kv import kv_group
from aspen.cli.lease import lease_group
from aspen.cli.operations import declared_groups
from aspen.cli.output import Output, emit
from aspen.cli.verify import verify_group
from aspen.rpc.ticket import TicketError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class _Root(click.Group):
    """The root group: its commands plus a group per declared CLI family, looked up when asked
    for, so an operation declared after import (a plugin, a test) has its command too."""

    def _declared(self) -> None:
        for group in declared_groups():
            self.commands.setdefault(group.name or "", group)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._declared()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._declared()
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=_Root,
    context_settings={
        "help_option_names": ["-h", "--help"],
        "max_content_width": 110,
        "auto_envvar_prefix": "ASPEN",
    },
)
@functools.partial(global_options, from_env=True)
@click.version_option(__version__, prog_name="aspen-cli")
@click.pass_context
def cli(ctx: click.Context, /, **kwargs: object) -> None:
    """Aspen: a linearizable key-value and blob store. Talks to a cluster named by a ticket."""
    settings = _merge(ctx, dict(kwargs))
    if settings.verbose:
        click.echo(f"aspen-cli v{__version__}", err=True)


cli.add_command(kv_group)
cli.add_command(cluster_group)
cli.add_command(lease_group)
cli.add_command(verify_group)
cli.add_command(blob_group)

#: The variable click's completion scripts set when they call `aspen-cli` back for candidates.
COMPLETE_VAR = "_ASPEN_CLI_COMPLETE"


@cli.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@global_options
def completion(shell: str, **kwargs: object) -> None:
    """Print the shell completion script: `eval "$(aspen-cli completion bash)"` (or zsh, fish)."""
    settings = _merge(click.get_current_context(), dict(kwargs))
    script = get_completion_class(shell)(cli, {}, "aspen-cli", COMPLETE_VAR).source()  # type: ignore[misc]
    emit(Output({"shell": shell, "script": script}, script.rstrip("\n")), settings.as_json)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(
            args=argv, prog_name="aspen-cli", complete_var=COMPLETE_VAR, standalone_mode=False, obj=Settings()
        )
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
    except Exception as err:
        # Last resort: a user never sees a traceback, only the message, on one line (a bug is
        # still a bug; -v does not change this, the message is what is worth reporting).
        click.echo(f"Error: {_one_line(f'{type(err).__name__}: {err}')}", err=True)
        sys.exit(EXIT_FAILURE)
    sys.exit(EXIT_OK)


def _one_line(text: str) -> str:
    return " ".join(text.split())
