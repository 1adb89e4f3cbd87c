"""Where a command line run writes, checked before anything renders: the output folder, the --zip
and --merge-pdf files (render) and the -o file (preview).

A destination is usable when it is not an existing folder (for a file) or file (for a folder), and
the nearest folder that already exists on its path is a folder a file can be created in. That is
probed by creating and removing an empty file there: permission bits say nothing to root, nor about a
read-only or virtual filesystem such as /proc. Nothing is left behind, so a run refused here writes
nothing.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pressrun.errors import UsageError


def check_output_folder(option: str, folder: Path) -> None:
    """``folder`` exists as a folder or can be created, and files can be written in it."""
    if folder.exists() and not folder.is_dir():
        raise _refuse(option, folder, "it is a file, not a folder")
    _check_creatable(option, folder, folder)


def check_output_file(option: str, path: Path) -> None:
    """``path`` is not a folder, and its folder exists or can be created and is writable."""
    if path.is_dir():
        raise _refuse(option, path, "it is a folder; give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise _refuse(option, path, "the file exists and cannot be overwritten (no write permission)")
    _check_creatable(option, path, path.parent)


def _check_creatable(option: str, path: Path, folder: Path) -> None:
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise _refuse(option, path, f"{existing} is a file, so no folder can be created inside it")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".pressrun-probe-"):
            pass
    except OSError as exc:
        raise _refuse(option, path, f"cannot create files in {existing} ({exc.strerror or exc})") from exc


def _refuse(option: str, path: Path, why: str) -> UsageError:
    return UsageError(f"{option} {path}: {why}", field=option, value=str(path))

