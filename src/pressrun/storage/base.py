"""The storage role: what the rest of pressrun asks of the place output files and template assets live.

Backends: :class:`~pressrun.storage.local.LocalStorage` (files under a folder, what the service runs on)
and :class:`~pressrun.storage.memory.MemoryStorage` (a dict, for fast tests). Keys are '/'-separated
relative paths like ``batches/<uid>/0.png``, validated the same way by every backend
(:func:`pressrun.storage.local.validate_key`); an invalid key is a :class:`~pressrun.errors.UsageError`.

``path()`` is the one local-filesystem notion on the role. It exists because three callers hand a file
or folder to something that reads the disk itself:

- ``Service.asset_root``: a template's asset folder (``templates/<uid>``), which Chromium loads
  images and fonts from;
- ``api.routes.system.signed_file``: a signed download, streamed by Starlette's ``FileResponse``;
- ``api.routes.batches``: the files of a batch's ZIP archive, read by ``jobs.archive``.

A backend without a filesystem of its own gives a local copy there (MemoryStorage does); an object
store would do the same or those callers would move to :meth:`Storage.open`.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable


@runtime_checkable
class Storage(Protocol):
    """Objects addressed by keys. Writes are atomic: a reader sees the old object or the whole new one.
    Deleting what is already gone is not an error."""

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` at ``key``, replacing what was there."""

    def put_file(self, key: str, source: Path) -> None:
        """Store a copy of the local file ``source`` at ``key`` (uploads, seeded template assets)."""

    def exists(self, key: str) -> bool:
        """Whether an object is stored at ``key`` (a folder is not an object)."""

    def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when there is none at ``key``."""

    def open(self, key: str) -> BinaryIO:
        """A binary stream over the object; FileNotFoundError when there is none at ``key``."""

    def delete(self, key: str) -> bool:
        """Delete one object; True if it existed."""

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under the folder ``prefix`` ('batches/<uid>/' or 'batches/<uid>'),
        matched by whole segments; returns how many."""

    def remove_temporary_files(self, older_than_s: float = 0.0) -> int:
        """Delete what interrupted writes left behind (older than ``older_than_s``); returns how many."""

    def check(self) -> None:
        """Readiness: raise OSError, with a message naming the setting to fix, unless writes would work."""

    def path(self, key: str) -> Path:
        """A local path to read the object (or, for a folder key, the folder) from; it need not exist.
        For callers that hand the file to something reading the disk itself (see the module docstring)."""
