"""The ``vmapcheck`` command line.

Each subcommand is a module in ``checker/commands/`` exposing ``command`` (a click command);
this group finds them, so adding a subcommand touches no shared file.  Exit codes and the JSON
shape are in ``checker/result.py``; a user's error is one line on stderr and exit 2, an internal
error exit 4.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import click

from impl import __version__

from . import commands
from .designs import DesignError
from .result import ExitCode


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vmapcheck")
def cli() -> None:
    """Check and measure locking designs of the Linux vmap-area allocator."""


def _register() -> None:
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        cmd = getattr(module, "command", None)
        if isinstance(cmd, click.Command):
            cli.add_command(cmd)


_register()


def main() -> None:
    try:
        code = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(ExitCode.INTERNAL)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitCode.USAGE)
    except DesignError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(ExitCode.USAGE)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(ExitCode.INCOMPLETE)
    except Exception as exc:  # noqa: BLE001 - the contract says: internal error, exit 4
        click.echo(f"internal error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(ExitCode.INTERNAL)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
