"""MemoryStorage: the storage role in a dict, for fast tests of the layers above storage.

Same keys, same validation and same errors as LocalStorage (it uses ``validate_key``); thread-safe,
since the service writes from worker threads. Writes are atomic by construction (one dict assignment).

``path(key)`` writes a copy of the object, or of every object under a folder key, into a private
temporary folder and returns its path there: the callers that need a path (see storage/base.py) read
what was stored at the moment they asked. A later put is not reflected in a copy already handed out;
the next ``path()`` refreshes it. The folder is removed when the storage is garbage-collected.

Unlike a filesystem, a key may be both an object and the folder of other objects ('a' and 'a/b').
"""

from __future__ import annotations

import io
import shutil
import tempfile
import threading
import weakref
from pathlib import Path
from typing import BinaryIO

from pressrun.storage.local import validate_key, validate_prefix


class MemoryStorage:
    """Objects in a dict, addressed by keys like 'batches/<uid>/0.png'.

    ``check_error``: set it to an OSError to make :meth:`check` fail (readiness tests).
    """

    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._copies: Path | None = None  # where path() materializes objects, made on first use
        self.check_error: OSError | None = None

    def keys(self) -> list[str]:
        """Every stored key, sorted (for assertions)."""
        with self._lock:
            return sorted(self._objects)

    def put(self, key: str, data: bytes) -> None:
        validate_key(key)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"a bytes-like object is required, not {type(data).__name__!r}")
        with self._lock:
            self._objects[key] = bytes(data)

    def put_file(self, key: str, source: Path) -> None:
        validate_key(key)
        data = Path(source).read_bytes()
        with self._lock:
            self._objects[key] = data

    def exists(self, key: str) -> bool:
        validate_key(key)
        with self._lock:
            return key in self._objects

    def size(self, key: str) -> int | None:
        validate_key(key)
        with self._lock:
            data = self._objects.get(key)
        return None if data is None else len(data)

    def open(self, key: str) -> BinaryIO:
        """A stream over the object; raises FileNotFoundError when there is none at ``key``."""
        validate_key(key)
        with self._lock:
            data = self._objects.get(key)
        if data is None:
            raise FileNotFoundError(f"no file stored at key {key!r}")
        return io.BytesIO(data)

    def delete(self, key: str) -> bool:
        validate_key(key)
        with self._lock:
            return self._objects.pop(key, None) is not None

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under the folder ``prefix``, matched by whole segments; returns the count."""
        folder = validate_prefix(prefix) + "/"
        with self._lock:
            doomed = [key for key in self._objects if key.startswith(folder)]
            for key in doomed:
                del self._objects[key]
        return len(doomed)

    def remove_temporary_files(self, older_than_s: float = 0.0) -> int:
        """Nothing is ever half-written in memory."""
        return 0

    def check(self) -> None:
        if self.check_error is not None:
            raise self.check_error

    def path(self, key: str) -> Path:
        """A fresh local copy of the object at ``key``, else of every object under the folder ``key``;
        a path that does not exist when there is neither."""
        validate_key(key)
        with self._lock:
            if self._copies is None:
                self._copies = Path(tempfile.mkdtemp(prefix="pressrun-memory-storage-"))
                weakref.finalize(self, shutil.rmtree, self._copies, ignore_errors=True)
            target = self._copies / key
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
            if key in self._objects:
                wanted = {key: self._objects[key]}
            else:
                wanted = {k: v for k, v in self._objects.items() if k.startswith(key + "/")}
            for stored_key, data in wanted.items():
                copy = self._copies / stored_key
                copy.parent.mkdir(parents=True, exist_ok=True)
                copy.write_bytes(data)
        return target
