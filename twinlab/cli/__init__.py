"""The ``twinlab`` command line: a thin front end over the library.

Commands live in ``twinlab/cli/cmd_*.py``; each registers itself on :data:`app`. Every
:class:`~twinlab.errors.TwinlabError` becomes one line on stderr and exit code 2 (the
traceback only with ``--debug``).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

from ._app import app

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("cmd_")):
    importlib.import_module(f"{__name__}.{_mod}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``twinlab`` script."""
    app(args=argv if argv is not None else sys.argv[1:], prog_name="twinlab")


__all__ = ["app", "main"]
