"""Atomic, durable writes: a temp file in the target's folder, fsync, rename, fsync the folder.

Every artifact, result and state file of the project is written through here. The rename makes the
write atomic (a reader sees the old file or the new one, never half of one); the two fsyncs make it
durable: without them a power cut shortly after the rename (a Jetson unplugged) can leave a
zero-length or partly written file under the new name, because the file's data and the folder's
entry reach the disk in no guaranteed order.

Pure standard library; every stage may import it (runtime imports nothing from the other stages).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


def _default_mode() -> int:
    """0o666 minus the umask: what ``open(path, "w")`` would give (mkstemp's 0600 would hide artifacts
    from other users of a shared machine)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def fsync_file(path: str | Path) -> None:
    """Flush ``path``'s data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: str | Path) -> None:
    """Flush ``folder``'s entries (renames, new files) to the disk. A no-op where folders cannot be
    opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except (PermissionError, IsADirectoryError):  # pragma: no cover - not on Linux
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace(tmp: str | Path, target: str | Path) -> None:
    """fsync ``tmp``, rename it over ``target``, fsync the folder. ``tmp`` must be in ``target``'s folder."""
    fsync_file(tmp)
    os.replace(tmp, target)
    fsync_dir(Path(target).parent)


@contextlib.contextmanager
def atomic_path(target: str | Path, *, suffix: str = ".tmp", mode: int | None = None) -> Iterator[Path]:
    """Yield a temp path beside ``target`` for a library that writes by path (onnx.save, torch.save,
    savefig, copyfile); when the block ends without an exception it becomes ``target`` durably, else
    it is deleted and ``target`` is untouched. ``suffix``: keep the extension a writer infers the
    format from (".tmp.png"). ``mode``: file permissions (default 0o666 minus the umask)."""
    target = Path(target)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, _default_mode() if mode is None else mode)
        replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(target: str | Path, data: bytes, *, mode: int | None = None) -> Path:
    """Write ``data`` to ``target`` atomically and durably; returns ``target``."""
    with atomic_path(target, mode=mode) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return Path(target)


def write_text(target: str | Path, text: str, *, mode: int | None = None) -> Path:
    """``write_bytes`` for UTF-8 text."""
    return write_bytes(target, text.encode("utf-8"), mode=mode)


def write_group(files: dict[Path, bytes], *, mode: int | None = None) -> None:
    """Write several files so that none is replaced until all are on the disk: every temp file is
    written and fsynced first, then they are renamed in order. A failure while writing touches no
    target. (A kill during the renames, microseconds long, can still leave a mix: files that must
    agree also carry an id that their reader checks.)"""
    temps: list[tuple[Path, Path]] = []
    try:
        for target, payload in files.items():
            target = Path(target)
            fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            temps.append((Path(name), target))
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(name, _default_mode() if mode is None else mode)
        for tmp, target in temps:
            os.replace(tmp, target)
        for folder in dict.fromkeys(target.parent for _, target in temps):
            fsync_dir(folder)
    finally:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)


def fsync_tree(folder: str | Path) -> None:
    """fsync every file and folder under ``folder`` (itself included), deepest first."""
    folder = Path(folder)
    for root, _dirs, files in os.walk(folder, topdown=False):
        for name in files:
            fsync_file(Path(root) / name)
        fsync_dir(root)


def replace_dir(tmp_dir: str | Path, target: str | Path) -> None:
    """Make the finished folder ``tmp_dir`` (a sibling of ``target``) become ``target`` durably. An
    existing ``target`` is removed first: a reader may then find no folder for a moment, never a
    half-written one."""
    tmp_dir, target = Path(tmp_dir), Path(target)
    fsync_tree(tmp_dir)
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp_dir, target)
    fsync_dir(target.parent)
