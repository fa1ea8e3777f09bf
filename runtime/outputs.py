"""Where results go: check an output location before any work, and turn write failures into clear errors.

A run that tracks for minutes and then fails to write its boxes (a folder that does not exist, a path
under a file, /proc, a read-only mount, a full disk) has wasted the run. ``prepare_output`` is called
when the arguments are read: it creates missing parent folders and proves the folder takes a new file
(a probe file created and removed), so the run fails in the first second instead. Failures while
writing (ENOSPC, EACCES, EROFS...) become an ``InputError`` naming the path and what to do
(``output_error``); the writers remove their temporary files.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from runtime.errors import InputError

_ADVICE = {
    errno.ENOSPC: "no space left on the device; free some space or write to another disk",
    errno.EDQUOT: "the disk quota is exhausted; free some space or write elsewhere",
    errno.EACCES: "permission denied; choose a folder you can write to",
    errno.EPERM: "operation not permitted; choose a folder you can write to",
    errno.EROFS: "the file system is read-only; choose a writable folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
    errno.EISDIR: "it is a folder; give a file name",
    errno.ENOENT: "a part of the path does not exist and cannot be created here; choose another path",
}


def output_error(err: OSError, what: str, path) -> InputError:
    """An InputError for an OSError raised while creating or writing output ``path`` (``what``: the
    option, e.g. "--out")."""
    advice = _ADVICE.get(err.errno, err.strerror or str(err))
    return InputError(f"{what} {path}: cannot write there: {advice} ({err.strerror or err})")


def prepare_output(path, what: str) -> Path:
    """Check that ``path`` can be written, before any work: create its missing parent folders and
    create+remove a probe file beside it. ``-`` (stdout) and existing non-regular files (a FIFO, a
    device such as /dev/null) are checked for write permission only. Returns ``path`` as a Path;
    raises InputError saying what is wrong."""
    path = Path(path)
    if str(path) == "-":
        return path
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as err:
        raise output_error(err, what, path) from None
    if mode is not None and stat.S_ISDIR(mode):
        raise InputError(f"{what} {path}: is a folder; give a file name inside it")
    if mode is not None and not stat.S_ISREG(mode):
        if not os.access(path, os.W_OK):
            raise InputError(f"{what} {path}: exists and is not writable; choose another path")
        return path
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError(f"{what} {path}: {_first_file(parent)} is a file, so no folder can be made "
                         "there; choose another path") from None
    except OSError as err:
        raise output_error(err, what, path) from None
    probe = parent / f".{path.name}.probe{os.getpid()}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)
    except OSError as err:
        raise output_error(err, what, path) from None
    return path


def _first_file(folder: Path) -> Path:
    """The deepest existing ancestor of ``folder`` (the file that blocks creating it)."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return candidate
    return folder
