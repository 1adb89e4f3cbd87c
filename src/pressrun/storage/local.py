"""Output files and template assets on the local filesystem, addressed by '/'-separated keys.

Responsible for three guarantees: a key can never address anything outside the root folder (keys are
validated, then the resolved path is checked, so a symlink inside the root cannot lead out of it); a reader
never sees a half-written file (every write goes to a temporary file in the destination folder, is fsynced,
then renamed over the target); and deleting what is already gone is not an error.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from pressrun.errors import UsageError

MAX_SEGMENT_BYTES = 255  # NAME_MAX on Linux, macOS and the common filesystems
VALID_KEYS = (
    "keys are '/'-separated relative paths like 'batches/<uid>/0.png': no leading '/', no empty, '.' or '..' "
    f"segments, no backslash or NUL, each segment at most {MAX_SEGMENT_BYTES} bytes"
)
TEMP_PREFIX = ".pressrun-tmp-"  # fixed length, so a temporary name never exceeds NAME_MAX
# Files are written here first and renamed into place, so whatever a crash leaves half-written is in
# one folder: cleaning up lists that folder instead of walking every stored file.
TEMP_DIR = ".pressrun-tmp"


def key_problem(key: object) -> str | None:
    """What is wrong with ``key``, or None when it is a valid storage key. Pure: touches no files."""
    if not isinstance(key, str):
        return f"it is a {type(key).__name__}, not a string"
    if not key:
        return "it is empty"
    if "\x00" in key:
        return "it contains a NUL character"
    if "\\" in key:
        return "it contains a backslash"
    if key.startswith("/"):
        return "it starts with '/'"
    if key.split("/", 1)[0] == TEMP_DIR:
        return f"{TEMP_DIR!r} is reserved for files being written"
    for segment in key.split("/"):
        if segment == "":
            return "it has an empty segment ('//' or a trailing '/')"
        if segment in (".", ".."):
            return f"it has a {segment!r} segment"
        if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
            return f"a segment is longer than {MAX_SEGMENT_BYTES} bytes"
    return None


def validate_key(key: str) -> str:
    problem = key_problem(key)
    if problem is not None:
        raise UsageError(f"invalid storage key {key!r}: {problem}; {VALID_KEYS}", key=key)
    return key


def validate_prefix(prefix: str) -> str:
    """The folder key a prefix names ('batches/<uid>/' and 'batches/<uid>' both name 'batches/<uid>')."""
    folder_key = prefix[:-1] if isinstance(prefix, str) and prefix.endswith("/") else prefix
    problem = key_problem(folder_key)
    if problem is not None:
        raise UsageError(f"invalid storage prefix {prefix!r}: {problem}; {VALID_KEYS}", key=prefix)
    return folder_key


class LocalStorage:
    """Files under a root folder, addressed by keys like 'batches/<uid>/0.png'."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        self.root.mkdir(parents=True, exist_ok=True)
        self._real_root = self.root.resolve()

    def path(self, key: str) -> Path:
        """The local path for ``key``; raises UsageError if the key is invalid or leads outside the root."""
        validate_key(key)
        candidate = self.root / key
        # resolve() follows every symlink that exists along the way, so a link planted inside the root
        # cannot be used to read or overwrite files elsewhere.
        try:
            inside = candidate.resolve().is_relative_to(self._real_root)
        except (OSError, RuntimeError):  # a symlink loop
            inside = False
        if not inside:
            raise UsageError(f"invalid storage key {key!r}: it resolves outside the storage root", key=key)
        return candidate

    def put(self, key: str, data: bytes) -> None:
        self._write_atomically(self.path(key), lambda out: out.write(data))

    def put_file(self, key: str, source: Path) -> None:
        """Copy ``source`` (e.g. an uploaded asset) to ``key``; readers see the old file or the whole new one."""
        with open(source, "rb") as src:
            self._write_atomically(self.path(key), lambda out: shutil.copyfileobj(src, out, 1024 * 1024))

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def size(self, key: str) -> int | None:
        try:
            info = self.path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return None if stat.S_ISDIR(info.st_mode) else info.st_size

    def open(self, key: str) -> BinaryIO:
        """Open the file for reading; raises FileNotFoundError when there is no file at ``key``."""
        path = self.path(key)
        try:
            return open(path, "rb")
        except (IsADirectoryError, NotADirectoryError) as exc:
            raise FileNotFoundError(f"no file stored at key {key!r}") from exc

    def delete(self, key: str) -> bool:
        """Delete one file; True if it existed. Parent folders are kept: a concurrent put may be using them."""
        try:
            self.path(key).unlink()
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    def delete_prefix(self, prefix: str) -> int:
        """Delete every file under the folder ``prefix`` ('batches/<uid>/' or 'batches/<uid>'); returns the count.

        The prefix is matched by whole segments: 'batches/ab' does not touch 'batches/abc/'.
        """
        top = self.path(validate_prefix(prefix))
        if top.is_symlink() or not top.is_dir():
            return 0
        count = 0
        for folder, dirnames, filenames in os.walk(top, topdown=False):
            for name in filenames:
                try:
                    os.unlink(os.path.join(folder, name))
                    count += 1
                except FileNotFoundError:
                    pass
            for name in dirnames:
                _remove_dir_or_link(os.path.join(folder, name))
        _remove_dir_or_link(str(top))
        return count

    def remove_temporary_files(self, older_than_s: float = 0.0) -> int:
        """Delete half-written files a crash left behind (older than ``older_than_s``); returns how many."""
        cutoff = time.time() - older_than_s
        removed = 0
        folder = self.root / TEMP_DIR
        for temp in folder.iterdir() if folder.is_dir() else ():
            try:
                if temp.is_file() and not temp.is_symlink() and temp.stat().st_mtime <= cutoff:
                    temp.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def check(self) -> None:
        """Readiness: the root exists and a file can be written and deleted in it; raises OSError otherwise."""
        if not self.root.is_dir():
            raise OSError(
                f"storage folder {self.root} is missing or not a folder (check the data_dir setting)"
            )
        probe = self.root / f"{TEMP_PREFIX}probe-{secrets.token_hex(8)}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, b"ok")
            finally:
                os.close(fd)
            probe.unlink()
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"storage folder {self.root} is not writable: {exc.strerror} (check the data_dir setting "
                "and the folder's owner and permissions)",
            ) from exc

    def _write_atomically(self, path: Path, write: Callable[[BinaryIO], object]) -> None:
        temps = self.root / TEMP_DIR
        temps.mkdir(exist_ok=True)
        temp = temps / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        try:
            with open(temp, "xb") as out:
                write(out)
                out.flush()
                os.fsync(out.fileno())
            _move_into_place(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)


def _move_into_place(temp: Path, path: Path) -> None:
    """Rename the written file to its key's path, making the folder first; retried once because a
    concurrent delete_prefix may remove the (still empty) folder between the mkdir and the rename."""
    for attempt in (1, 2):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(temp, path)
            return
        except FileNotFoundError:
            if attempt == 2 or not temp.exists():
                raise


def _remove_dir_or_link(path: str) -> None:
    try:
        if os.path.islink(path):
            os.unlink(path)
        else:
            os.rmdir(path)
    except OSError:
        # Already gone, or not empty because a put raced with the delete: that file stays for the next sweep.
        pass


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable; not every platform lets a folder be opened for this."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
