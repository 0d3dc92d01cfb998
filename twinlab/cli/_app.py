"""The typer application, global options, error handling and output helpers shared by commands."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
import typer
from typer.core import TyperGroup

from .. import __version__
from .._results import to_jsonable
from ..errors import TwinlabError, describe_os_error


class _TwinlabGroup(TyperGroup):
    """Turns TwinlabError into one stderr line and exit code 2 for every command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # --debug is a global option but people type it anywhere: `twinlab run cfg.toml --debug`
        cut = args.index("--") if "--" in args else len(args)
        if "--debug" in args[:cut]:
            args = ["--debug", *[a for a in args[:cut] if a != "--debug"], *args[cut:]]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TwinlabError as exc:
            if (ctx.obj or {}).get("debug"):
                raise
            click.echo(f"twinlab: error: {exc}", err=True)
            raise typer.Exit(2) from None
        except OSError as exc:  # a full disk or an unwritable folder is the user's to fix, not a bug
            message = describe_os_error(exc)
            if message is None or (ctx.obj or {}).get("debug"):
                raise
            click.echo(f"twinlab: error: {message}", err=True)
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=_TwinlabGroup,
    help="twinlab — digital twins of battery electrodes: import FIB-SEM/EBAC data into an OME-Zarr twin, "
    "reconstruct, analyse (REV, network, transport), calender virtually, report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"twinlab {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                           help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
) -> None:
    ctx.obj = {"debug": debug}


def emit(data: Any, *, as_json: bool, title: str | None = None) -> None:
    """Print a result: JSON for machines (``--json``), a compact key/value listing for people."""
    plain = to_jsonable(data)
    if as_json:
        json.dump(plain, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    if title:
        typer.echo(title)
    _print_tree(plain, indent=0)


def warn(messages: Any) -> None:
    """Print each warning as one ``twinlab: warning: …`` line on stderr (after the result)."""
    for message in messages or ():
        typer.echo(f"twinlab: warning: {message}", err=True)


def _print_tree(obj: Any, indent: int) -> None:
    pad = "  " * indent
    if isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(value, (dict, list)) and value and not _is_short_list(value):
                typer.echo(f"{pad}{key}:")
                _print_tree(value, indent + 1)
            else:
                typer.echo(f"{pad}{key}: {_short(value)}")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, (dict, list)):
                _print_tree(item, indent + 1)
                typer.echo(f"{pad}-")
            else:
                typer.echo(f"{pad}- {_short(item)}")
    else:
        typer.echo(f"{pad}{_short(obj)}")


def _is_short_list(value: Any) -> bool:
    return isinstance(value, list) and len(value) <= 8 and all(not isinstance(v, (dict, list)) for v in value)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return str(value)
