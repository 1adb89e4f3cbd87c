"""LocalStorage on the real filesystem: round trips, atomic writes, key validation, symlinks, deletes, readiness."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pressrun.errors import UsageError
from pressrun.storage import LocalStorage
from pressrun.storage.local import TEMP_PREFIX


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files")


def leftover_temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(TEMP_PREFIX)]


def test_init_creates_a_missing_root(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b"
    storage = LocalStorage(root)
    assert root.is_dir()
    assert storage.root == root


def test_put_then_read_back(storage: LocalStorage) -> None:
    storage.put("batches/b1/0.png", b"\x89PNG data")
    assert storage.exists("batches/b1/0.png")
    assert storage.size("batches/b1/0.png") == 9
    with storage.open("batches/b1/0.png") as f:
        assert f.read() == b"\x89PNG data"
    assert storage.path("batches/b1/0.png") == storage.root / "batches" / "b1" / "0.png"


def test_missing_key_reads_as_absent(storage: LocalStorage) -> None:
    assert not storage.exists("batches/none/0.png")
    assert storage.size("batches/none/0.png") is None
    with pytest.raises(FileNotFoundError):
        storage.open("batches/none/0.png")


def test_a_folder_is_not_a_file(storage: LocalStorage) -> None:
    storage.put("batches/b1/0.png", b"x")
    assert not storage.exists("batches/b1")
    assert storage.size("batches/b1") is None
    with pytest.raises(FileNotFoundError):
        storage.open("batches/b1")


def test_put_replaces_whole_file_and_leaves_no_temp_files(storage: LocalStorage) -> None:
    storage.put("renders/r1.png", b"old contents, longer than the new ones")
    storage.put("renders/r1.png", b"new")
    assert storage.open("renders/r1.png").read() == b"new"
    assert leftover_temp_files(storage.root) == []
    assert sorted(p.name for p in (storage.root / "renders").iterdir()) == ["r1.png"]


def test_failed_put_keeps_old_file_and_removes_temp(storage: LocalStorage) -> None:
    storage.put("renders/r1.png", b"old")
    with pytest.raises(TypeError):
        storage.put("renders/r1.png", "not bytes")  # type: ignore[arg-type]
    assert storage.open("renders/r1.png").read() == b"old"
    assert leftover_temp_files(storage.root) == []


def test_put_file_copies_atomically(storage: LocalStorage, tmp_path: Path) -> None:
    source = tmp_path / "upload.bin"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    storage.put_file("templates/t1/assets/logo.png", source)
    assert storage.path("templates/t1/assets/logo.png").read_bytes() == source.read_bytes()
    assert source.exists()
    assert leftover_temp_files(storage.root) == []


def test_put_file_missing_source_leaves_nothing(storage: LocalStorage, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        storage.put_file("templates/t1/assets/logo.png", tmp_path / "nope")
    assert not storage.exists("templates/t1/assets/logo.png")
    assert leftover_temp_files(storage.root) == []


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


OPERATIONS = {
    "put": lambda storage, key: storage.put(key, b"x"),
    "put_file": lambda storage, key: storage.put_file(key, Path(__file__)),
    "path": LocalStorage.path,
    "exists": LocalStorage.exists,
    "size": LocalStorage.size,
    "open": LocalStorage.open,
    "delete": LocalStorage.delete,
    "delete_prefix": LocalStorage.delete_prefix,
}
CASES = [
    (operation, key, reason)
    for operation in OPERATIONS
    for key, reason in BAD_KEYS
    if not (operation == "delete_prefix" and key == "batches/b1/")  # that is how a prefix is written
]


@pytest.mark.parametrize(("operation", "key", "reason"), CASES)
def test_bad_keys_are_refused_with_a_message_naming_them(
    storage: LocalStorage, operation: str, key: str, reason: str
) -> None:
    with pytest.raises(UsageError) as info:
        OPERATIONS[operation](storage, key)
    assert repr(key) in info.value.message
    assert reason in info.value.message
    assert "'/'-separated relative paths" in info.value.message
    assert info.value.details["key"] == key
    assert list(storage.root.iterdir()) == []


def test_longest_valid_segment_is_accepted(storage: LocalStorage) -> None:
    key = "batches/" + "a" * 255
    storage.put(key, b"x")
    assert storage.exists(key)
    assert leftover_temp_files(storage.root) == []


def test_unusual_but_valid_keys(storage: LocalStorage) -> None:
    for key in ["x", ".hidden", "..dots", "with space/é ü.png", "a/b/c/d/e.pdf"]:
        storage.put(key, key.encode())
        assert storage.open(key).read() == key.encode()


def test_symlink_out_of_the_root_is_refused(storage: LocalStorage, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    (storage.root / "escape").symlink_to(outside, target_is_directory=True)
    (storage.root / "file-link").symlink_to(outside / "secret.txt")

    for key in ["escape/secret.txt", "escape/new.png", "file-link"]:
        with pytest.raises(UsageError, match="outside the storage root"):
            storage.path(key)
    with pytest.raises(UsageError):
        storage.put("escape/new.png", b"x")
    with pytest.raises(UsageError):
        storage.open("escape/secret.txt")
    with pytest.raises(UsageError):
        storage.delete_prefix("escape/")
    assert not (outside / "new.png").exists()
    assert (outside / "secret.txt").read_bytes() == b"secret"


def test_symlink_inside_the_root_is_allowed(storage: LocalStorage) -> None:
    storage.put("real/a.png", b"a")
    (storage.root / "alias").symlink_to(storage.root / "real", target_is_directory=True)
    assert storage.open("alias/a.png").read() == b"a"


def test_delete_reports_whether_something_was_deleted(storage: LocalStorage) -> None:
    storage.put("renders/r1.png", b"x")
    assert storage.delete("renders/r1.png") is True
    assert not storage.exists("renders/r1.png")
    assert storage.delete("renders/r1.png") is False
    assert storage.delete("never/was/there.png") is False


def test_delete_prefix_removes_the_folder_and_counts_files(storage: LocalStorage) -> None:
    for i in range(3):
        storage.put(f"batches/b1/{i}.png", b"x")
    storage.put("batches/b1/zip/all.zip", b"x")
    storage.put("batches/b10/0.png", b"keep")
    storage.put("batches/b2/0.png", b"keep")

    assert storage.delete_prefix("batches/b1/") == 4
    assert not (storage.root / "batches" / "b1").exists()
    assert storage.exists("batches/b10/0.png")
    assert storage.exists("batches/b2/0.png")
    assert storage.delete_prefix("batches/b1/") == 0
    assert storage.delete_prefix("batches/b2") == 1  # without the trailing slash: the same folder
    assert storage.delete_prefix("nothing/here/") == 0
    # The folder can be written to again straight away.
    storage.put("batches/b1/0.png", b"again")
    assert storage.exists("batches/b1/0.png")


def test_delete_prefix_on_a_file_key_deletes_nothing(storage: LocalStorage) -> None:
    storage.put("renders/r1.png", b"x")
    assert storage.delete_prefix("renders/r1.png/") == 0
    assert storage.exists("renders/r1.png")


def test_check_passes_on_a_writable_root(storage: LocalStorage) -> None:
    storage.check()
    assert list(storage.root.iterdir()) == []


def test_check_fails_when_the_root_is_gone(storage: LocalStorage) -> None:
    storage.root.rmdir()
    with pytest.raises(OSError, match="storage folder"):
        storage.check()


def test_check_fails_on_a_read_only_root(storage: LocalStorage) -> None:
    storage.root.chmod(0o500)
    try:
        try:
            (storage.root / "can-i-write").touch()
        except PermissionError:
            pass
        else:
            (storage.root / "can-i-write").unlink()
            pytest.skip("permissions are not enforced for this user (running as root?)")
        with pytest.raises(OSError, match="not writable"):
            storage.check()
    finally:
        storage.root.chmod(0o700)


def test_remove_temporary_files_deletes_only_stale_half_written_files(tmp_path):
    import os
    import time

    from pressrun.storage.local import TEMP_DIR, TEMP_PREFIX

    storage = LocalStorage(tmp_path)
    storage.put("batches/b/0.png", b"done")  # writes go through the temporary folder
    stale = storage.root / TEMP_DIR / f"{TEMP_PREFIX}0123456789abcdef"
    stale.write_bytes(b"half")
    fresh = storage.root / TEMP_DIR / f"{TEMP_PREFIX}fedcba9876543210"
    fresh.write_bytes(b"being written")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    assert storage.remove_temporary_files(older_than_s=3600) == 1
    assert not stale.exists() and fresh.exists()
    assert storage.remove_temporary_files() == 1 and not fresh.exists()
    assert storage.exists("batches/b/0.png")
