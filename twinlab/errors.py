"""Exceptions raised by twinlab.

Every message says what was wrong and how to fix it. The CLI turns any
:class:`TwinlabError` into one line on stderr and exit code 2.
"""

from __future__ import annotations

import errno


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

    #: iterations the failed solve spent (the mechanics solver counts its CG iterations here)
    cg_iterations: int = 0


class MissingDependencyError(TwinlabError, ImportError):
    """An optional dependency needed for this feature is not installed."""


_OS_ERROR_FIXES = {
    errno.ENOSPC: "no space left on the device; free space or write to another folder",
    errno.EDQUOT: "disk quota exceeded; free space or write to another folder",
    errno.EROFS: "read-only file system; write to another folder",
    errno.EACCES: "permission denied; fix the permissions or use a folder you may write to",
    errno.EPERM: "operation not permitted; fix the permissions or use a folder you may write to",
}


def describe_os_error(exc: OSError) -> str | None:
    """One line for an OSError the user can fix (disk full, read-only or forbidden folder), else None.

    Writers remove their temporary folders before such an error reaches the caller, so a twin
    being replaced is left as it was.
    """
    fix = _OS_ERROR_FIXES.get(exc.errno)
    if fix is None:
        return None
    return f"{exc.filename if exc.filename is not None else 'a file'}: {fix}"
