"""Exceptions raised by twinlab.

Every message says what was wrong and how to fix it. The CLI turns any
:class:`TwinlabError` into one line on stderr and exit code 2.
"""

from __future__ import annotations


class TwinlabError(Exception):
    """Base class of all errors twinlab raises on purpose."""


class InputError(TwinlabError, ValueError):
    """Bad parameters or data: a shape, dtype, value or option that cannot work."""


class ReadError(TwinlabError, OSError):
    """A file exists but cannot be read as the format it claims to be."""


class TwinStoreError(TwinlabError, OSError):
    """A path is not a (complete, compatible) twin store."""


class OutputExistsError(TwinlabError, FileExistsError):
    """The output path exists and overwriting was not requested."""


class ConvergenceError(TwinlabError, RuntimeError):
    """A solver diverged or did not reach its tolerance; no result is returned."""


class MissingDependencyError(TwinlabError, ImportError):
    """An optional dependency needed for this feature is not installed."""
