"""An in-memory cache of template asset files, so a thousand rows do not read the logo a thousand times."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from pressrun.rendering.policy import content_type_for


class AssetCache:
    """Least-recently-used cache of file bytes, keyed by path and modification time, bounded in bytes."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[Path, int, int], tuple[bytes, str]] = OrderedDict()
        self._size_bytes = 0

    def read(self, path: Path) -> tuple[bytes, str]:
        stat = path.stat()
        key = (path, stat.st_mtime_ns, stat.st_size)
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            return entry
        entry = (path.read_bytes(), content_type_for(path))
        if len(entry[0]) <= self.max_bytes:
            self._entries[key] = entry
            self._size_bytes += len(entry[0])
            while self._size_bytes > self.max_bytes:
                _, (evicted, _) = self._entries.popitem(last=False)
                self._size_bytes -= len(evicted)
        return entry
