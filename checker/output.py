"""Shared output helpers: print a ``Result`` as JSON or text, and decide on progress bars.

Progress bars are on only when stderr is a terminal and ``CI`` is not set (DESIGN.md).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console

from .result import Result

# Piped output keeps whole table rows instead of rich's 80-column default.
stderr_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
stdout_console = Console(width=None if sys.stdout.isatty() else 160)


def progress_enabled() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


def finish(result: Result, as_json: bool) -> None:
    """Print the JSON form when asked and exit with the result's code."""
    if as_json:
        click.echo(result.dumps())
    raise SystemExit(int(result.exit_code))


F = TypeVar("F", bound=Callable[..., Any])


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True,
                        help="Machine-readable result on stdout; logs go to stderr.")(f)


def seed_option(f: F) -> F:
    return click.option("--seed", type=int, default=0, show_default=True,
                        help="Seed of every random choice.")(f)
