"""The storage contract, run against every backend: what callers may rely on whatever stores the files.

Backend-specific behaviour (atomic renames, symlinks, folder permissions) is in test_local.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pressrun.errors import UsageError
from pressrun.storage import LocalStorage, MemoryStorage, Storage


def stored_keys(storage: Storage) -> list[str]:
    """Every key the backend holds (how each backend is looked into, not part of the contract)."""
    if isinstance(storage, MemoryStorage):
        return storage.keys()
    assert isinstance(storage, LocalStorage)
    return sorted(p.relative_to(storage.root).as_posix() for p in storage.root.rglob("*") if p.is_file())


def nothing_stored(storage: Storage) -> bool:
    """Not a key, and for files not even a folder (or a temporary file) was left behind."""
    if isinstance(storage, LocalStorage):
        return list(storage.root.iterdir()) == []
    return stored_keys(storage) == []


BACKENDS: dict[str, Callable[[Path], Storage]] = {
    "local": lambda tmp_path: LocalStorage(tmp_path / "files"),
    "memory": lambda tmp_path: MemoryStorage(),
}


@pytest.fixture(params=list(BACKENDS))
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    return BACKENDS[request.param](tmp_path)


def test_every_backend_is_a_storage(storage: Storage) -> None:
    assert isinstance(storage, Storage)


def test_put_then_read_back(storage: Storage) -> None:
    storage.put("batches/b1/0.png", b"\x89PNG data")
    assert storage.exists("batches/b1/0.png")
    assert storage.size("batches/b1/0.png") == 9
    with storage.open("batches/b1/0.png") as f:
        assert f.read() == b"\x89PNG data"
    assert storage.path("batches/b1/0.png").read_bytes() == b"\x89PNG data"


def test_open_streams_in_chunks(storage: Storage) -> None:
    data = os.urandom(256 * 1024 + 3)
    storage.put("renders/big.bin", data)
    with storage.open("renders/big.bin") as f:
        chunks = list(iter(lambda: f.read(64 * 1024), b""))
    assert len(chunks) == 5
    assert b"".join(chunks) == data


def test_missing_key_reads_as_absent(storage: Storage) -> None:
    assert not storage.exists("batches/none/0.png")
    assert storage.size("batches/none/0.png") is None
    with pytest.raises(FileNotFoundError):
        storage.open("batches/none/0.png")
    assert not storage.path("batches/none/0.png").exists()


def test_a_folder_is_not_a_file(storage: Storage) -> None:
    storage.put("batches/b1/0.png", b"x")
    assert not storage.exists("batches/b1")
    assert storage.size("batches/b1") is None
    with pytest.raises(FileNotFoundError):
        storage.open("batches/b1")


def test_a_folder_key_gives_a_folder_path_holding_its_files(storage: Storage) -> None:
    storage.put("templates/t1/assets/logo.png", b"logo")
    storage.put("templates/t1/assets/fonts/a.woff2", b"font")
    storage.put("templates/t10/assets/other.png", b"not this one")
    folder = storage.path("templates/t1")
    assert (folder / "assets" / "logo.png").read_bytes() == b"logo"
    assert (folder / "assets" / "fonts" / "a.woff2").read_bytes() == b"font"
    assert not (folder / "assets" / "other.png").exists()


def test_put_replaces_the_whole_object(storage: Storage) -> None:
    storage.put("renders/r1.png", b"old contents, longer than the new ones")
    storage.put("renders/r1.png", b"new")
    assert storage.open("renders/r1.png").read() == b"new"
    assert storage.size("renders/r1.png") == 3
    assert storage.path("renders/r1.png").read_bytes() == b"new"
    assert stored_keys(storage) == ["renders/r1.png"]


def test_failed_put_keeps_the_old_object(storage: Storage) -> None:
    storage.put("renders/r1.png", b"old")
    with pytest.raises(TypeError):
        storage.put("renders/r1.png", "not bytes")  # type: ignore[arg-type]
    assert storage.open("renders/r1.png").read() == b"old"


def test_put_file_copies(storage: Storage, tmp_path: Path) -> None:
    source = tmp_path / "upload.bin"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    storage.put_file("templates/t1/assets/logo.png", source)
    assert storage.open("templates/t1/assets/logo.png").read() == source.read_bytes()
    assert source.exists()


def test_put_file_missing_source_leaves_nothing(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        storage.put_file("templates/t1/assets/logo.png", tmp_path / "nope")
    assert not storage.exists("templates/t1/assets/logo.png")
    assert stored_keys(storage) == []


BAD_KEYS = [
    ("", "empty"),
    ("/etc/passwd", "starts with '/'"),
    ("../outside.png", "'..' segment"),
    ("batches/../../outside.png", "'..' segment"),
    ("batches/./0.png", "'.' segment"),
    (".", "'.' segment"),
    ("batches\\0.png", "backslash"),
    ("batches/0.png\x00.txt", "NUL"),
    ("batches//0.png", "empty segment"),
    ("batches/b1/", "empty segment"),
    ("batches/" + "a" * 256, "longer than 255 bytes"),
    ("batches/" + "é" * 128, "longer than 255 bytes"),  # 256 bytes in UTF-8, 128 characters
    (".pressrun-tmp/x.png", "reserved for files being written"),
]


OPERATIONS: dict[str, Callable[[Storage, str], Any]] = {
    "put": lambda storage, key: storage.put(key, b"x"),
    "put_file": lambda storage, key: storage.put_file(key, Path(__file__)),
    "path": lambda storage, key: storage.path(key),
    "exists": lambda storage, key: storage.exists(key),
    "size": lambda storage, key: storage.size(key),
    "open": lambda storage, key: storage.open(key),
    "delete": lambda storage, key: storage.delete(key),
    "delete_prefix": lambda storage, key: storage.delete_prefix(key),
}
CASES = [
    (operation, key, reason)
    for operation in OPERATIONS
    for key, reason in BAD_KEYS
    if not (operation == "delete_prefix" and key == "batches/b1/")  # that is how a prefix is written
]


@pytest.mark.parametrize(("operation", "key", "reason"), CASES)
def test_bad_keys_are_refused_with_a_message_naming_them(
    storage: Storage, operation: str, key: str, reason: str
) -> None:
    with pytest.raises(UsageError) as info:
        OPERATIONS[operation](storage, key)
    assert repr(key) in info.value.message
    assert reason in info.value.message
    assert "'/'-separated relative paths" in info.value.message
    assert info.value.details["key"] == key
    assert nothing_stored(storage)


def test_longest_valid_segment_is_accepted(storage: Storage) -> None:
    key = "batches/" + "a" * 255
    storage.put(key, b"x")
    assert storage.exists(key)


def test_unusual_but_valid_keys(storage: Storage) -> None:
    for key in ["x", ".hidden", "..dots", "with space/é ü.png", "a/b/c/d/e.pdf"]:
        storage.put(key, key.encode())
        assert storage.open(key).read() == key.encode()


def test_delete_reports_whether_something_was_deleted(storage: Storage) -> None:
    storage.put("renders/r1.png", b"x")
    assert storage.delete("renders/r1.png") is True
    assert not storage.exists("renders/r1.png")
    assert storage.delete("renders/r1.png") is False
    assert storage.delete("never/was/there.png") is False


def test_delete_prefix_removes_the_folder_and_counts_files(storage: Storage) -> None:
    for i in range(3):
        storage.put(f"batches/b1/{i}.png", b"x")
    storage.put("batches/b1/zip/all.zip", b"x")
    storage.put("batches/b10/0.png", b"keep")
    storage.put("batches/b2/0.png", b"keep")

    assert storage.delete_prefix("batches/b1/") == 4
    assert stored_keys(storage) == ["batches/b10/0.png", "batches/b2/0.png"]
    assert storage.delete_prefix("batches/b1/") == 0
    assert storage.delete_prefix("batches/b2") == 1  # without the trailing slash: the same folder
    assert storage.delete_prefix("nothing/here/") == 0
    # The folder can be written to again straight away.
    storage.put("batches/b1/0.png", b"again")
    assert storage.exists("batches/b1/0.png")


def test_delete_prefix_on_a_file_key_deletes_nothing(storage: Storage) -> None:
    storage.put("renders/r1.png", b"x")
    assert storage.delete_prefix("renders/r1.png/") == 0
    assert storage.exists("renders/r1.png")


def test_check_passes_when_writable_and_nothing_is_left_over(storage: Storage) -> None:
    storage.check()
    assert storage.remove_temporary_files() == 0
    assert nothing_stored(storage)
