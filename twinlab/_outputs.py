"""Which folders twinlab may replace or delete, and how it stages, publishes and cleans its outputs.

One owner for "is this ours?": every command that replaces an output (``--overwrite``, ``batch``,
calendering series, the pipeline) asks :func:`check_replaceable`, and every staging folder is
made by :func:`make_staging`. A folder is ours when it is

- a twin: ``zarr.json`` with ``twinlab`` attributes (complete or not) and only a twin's entries
  (``zarr.json``, pyramid levels ``0/ 1/ …``, ``labels/``, ``twinlab/``, hidden staging names);
- a calendering series: ``index.json`` and twins, nothing else;
- a staging folder: it holds the marker file :data:`MARKER` naming its owner process.

Anything else at an output path (a file, a symlink, a folder holding a user's files, an empty
folder someone made) is refused with one line; nothing the user made is ever deleted.

Staging: a new output is written under a hidden marked folder beside its final place
(``.<name>.<kind>-<id>``) and :func:`publish`-ed when complete: the old output, if any, is moved
into a marked trash folder, the new one renamed into place, then the trash deleted. A process
killed at any moment leaves only marked folders; :func:`clean_stale` removes those whose owner
process is dead (the same test the batch uses for its claims), and ``Twin.open`` refuses to open
a folder inside another process's staging folder.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from pathlib import Path

from .errors import OutputExistsError

#: file inside every staging folder: "<host> <pid> <unix time>" of the process that owns it
MARKER = ".twinlab-staging"
_TWIN_ENTRIES = {"zarr.json", "labels", "twinlab"}


# ====================================================================================== ownership
def owner_stamp() -> str:
    """``"<host> <pid> <unix time>"`` of this process: what markers and batch claims record."""
    return f"{socket.gethostname()} {os.getpid()} {time.time():.0f}"


def stamp_is_stale(stamp: str) -> bool:
    """True only if the stamp names a process of this host that no longer runs.

    An unreadable stamp (being written right now) or another host's (cannot be checked) is
    respected, never taken for stale.
    """
    try:
        host, pid, _ = stamp.split()
        pid_number = int(pid)
    except ValueError:
        return False
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid_number, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


def _stamp_is_mine(stamp: str) -> bool:
    parts = stamp.split()
    return len(parts) == 3 and parts[0] == socket.gethostname() and parts[1] == str(os.getpid())


def _marker(folder: Path) -> str | None:
    try:
        return (folder / MARKER).read_text()
    except (OSError, UnicodeDecodeError):
        return None


def is_foreign_staging(path: str | os.PathLike) -> bool:
    """True if ``path`` is (inside) a staging folder that another process made, alive or dead."""
    path = Path(os.path.abspath(path))
    for folder in (path, *path.parents):
        stamp = _marker(folder)
        if stamp is not None:
            return not _stamp_is_mine(stamp)
    return False


def is_twin_dir(path: str | os.PathLike) -> bool:
    """A folder with a twin's ``zarr.json`` (``twinlab`` attributes) and nothing but a twin's entries."""
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        return False
    try:
        attrs = json.loads((path / "zarr.json").read_text()).get("attributes", {})
        names = [p.name for p in path.iterdir()]
    except (OSError, ValueError, AttributeError):
        return False
    if not isinstance(attrs, dict) or not isinstance(attrs.get("twinlab"), dict):
        return False
    return all(n in _TWIN_ENTRIES or n.isdigit() or n.startswith(".") for n in names)


def is_series_dir(path: str | os.PathLike) -> bool:
    """A calendering series folder: ``index.json`` plus twins (and hidden staging entries) only."""
    path = Path(path)
    if path.is_symlink() or not path.is_dir() or not (path / "index.json").is_file():
        return False
    return all(p.name == "index.json" or p.name.startswith(".") or is_twin_dir(p) for p in path.iterdir())


def is_replaceable(path: str | os.PathLike) -> bool:
    """True if nothing is at ``path`` or what is there is a twinlab output (twin, series, staging folder)."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return True
    if path.is_symlink() or not path.is_dir():
        return False
    return _marker(path) is not None or is_twin_dir(path) or is_series_dir(path)


def check_replaceable(path: str | os.PathLike) -> None:
    """Raise :class:`OutputExistsError` if ``path`` holds something twinlab did not make."""
    if not is_replaceable(path):
        raise OutputExistsError(f"{path} exists and is not a twinlab twin or series; refusing to replace it "
                                "(choose another output or move it away)")


def check_output(path: str | os.PathLike, *, overwrite: bool, hint: str = "pass --overwrite") -> Path:
    """The one check before writing ``path``: stale staging of dead runs removed, an existing output
    refused unless ``overwrite``, and then only replaced if twinlab made it. Returns ``Path(path)``."""
    path = Path(path)
    clean_stale(path)
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise OutputExistsError(f"{path} already exists; choose another output or {hint}")
        check_replaceable(path)
    return path


# ====================================================================================== staging
def make_staging(parent: str | os.PathLike, name: str, kind: str) -> Path:
    """Create the marked hidden folder ``<parent>/.<name>.<kind>-<id>`` owned by this process."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    folder = parent / f".{name}.{kind}-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    try:
        (folder / MARKER).write_text(owner_stamp())
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def publish(new: str | os.PathLike, target: str | os.PathLike) -> None:
    """Put the finished staging folder ``new`` at ``target``.

    An existing ``target`` must be ours (:func:`check_replaceable`); it is moved into a marked
    trash folder first and deleted only after ``new`` is in place, so a crash at any moment leaves
    either the old or the new output at ``target`` (and at worst a stale trash folder, cleaned by
    the next run).
    """
    new, target = Path(new), Path(target)
    check_replaceable(target)
    (new / MARKER).unlink(missing_ok=True)
    if not target.exists():
        new.rename(target)
        return
    trash = make_staging(target.parent, target.name, "old")
    target.rename(trash / target.name)
    try:
        new.rename(target)
    except BaseException:
        (trash / target.name).rename(target)  # the old output stays where it was
        shutil.rmtree(trash, ignore_errors=True)
        raise
    shutil.rmtree(trash, ignore_errors=True)


def clean_stale(target: str | os.PathLike) -> list[Path]:
    """Remove the staging folders of ``target`` (``.<name>.*`` beside it) whose owner process is dead.

    Only folders carrying our marker are touched; a live owner's (a concurrent run) are left alone.
    Returns the folders removed.
    """
    target = Path(target)
    prefix = f".{target.name}."
    removed = []
    try:
        siblings = list(target.parent.iterdir())
    except OSError:
        return removed
    for folder in siblings:
        if not folder.name.startswith(prefix) or folder.is_symlink() or not folder.is_dir():
            continue
        stamp = _marker(folder)
        if stamp is not None and stamp_is_stale(stamp):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
