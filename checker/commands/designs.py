"""``vmapcheck designs``: list the designs (correct ones and seeded-bug mutants)."""

from __future__ import annotations

import click
from rich.table import Table

from impl.designs import builtin_designs

from ..output import finish, json_option, stdout_console
from ..result import Result


@click.command("designs")
@json_option
def command(as_json: bool) -> None:
    """List the available designs with a one-line description each."""
    designs = builtin_designs()
    rows = []
    for name, cls in sorted(designs.items(), key=lambda kv: (getattr(kv[1], "mutant_of", "") != "", kv[0])):
        rows.append({"name": name, "description": cls.description,
                     "mutant_of": getattr(cls, "mutant_of", None)})
    result = Result("designs", stats={"designs": len(rows)})
    result.stats["list"] = rows
    if not as_json:
        table = Table(title="designs")
        table.add_column("name")
        table.add_column("kind")
        table.add_column("description")
        for r in rows:
            table.add_row(r["name"], f"mutant of {r['mutant_of']}" if r["mutant_of"] else "design",
                          r["description"])
        stdout_console.print(table)
    finish(result, as_json)
