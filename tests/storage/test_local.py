"""LocalStorage on the real filesystem: atomic writes, symlinks, folders, readiness. What every backend\nmust do (round trips, key validation, deletes) is in test_contract.py."""

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


def test_a_key_is_a_path_under_the_root(storage: LocalStorage) -> None:
    storage.put("batches/b1/0.png", b"\x89PNG data")
    assert storage.path("batches/b1/0.png") == storage.root / "batches" / "b1" / "0.png"


def test_writes_leave_no_temporary_files(storage: LocalStorage, tmp_path: Path) -> None:
    storage.put("renders/r1.png", b"old contents, longer than the new ones")
    storage.put("renders/r1.png", b"new")
    assert leftover_temp_files(storage.root) == []
    assert sorted(p.name for p in (storage.root / "renders").iterdir()) == ["r1.png"]

    with pytest.raises(TypeError):
        storage.put("renders/r1.png", "not bytes")  # type: ignore[arg-type]
    assert leftover_temp_files(storage.root) == []

    source = tmp_path / "upload.bin"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    storage.put_file("templates/t1/assets/logo.png", source)
    assert storage.path("templates/t1/assets/logo.png").read_bytes() == source.read_bytes()
    assert leftover_temp_files(storage.root) == []

    with pytest.raises(FileNotFoundError):
        storage.put_file("templates/t1/assets/other.png", tmp_path / "nope")
    assert leftover_temp_files(storage.root) == []

    storage.put("batches/" + "a" * 255, b"x")  # the temporary name must fit NAME_MAX too
    assert leftover_temp_files(storage.root) == []


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


def test_delete_prefix_removes_the_folder_itself(storage: LocalStorage) -> None:
    storage.put("batches/b1/0.png", b"x")
    storage.put("batches/b1/zip/all.zip", b"x")
    assert storage.delete_prefix("batches/b1/") == 2
    assert not (storage.root / "batches" / "b1").exists()


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
