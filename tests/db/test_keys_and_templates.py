"""API keys (only the hash is stored, revocation), workspace isolation, template versions."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from pressrun.db import repo
from pressrun.db.schema import api_keys, template_versions, templates


def test_create_and_find_key(db):
    key, record = repo.create_key(db, name="acme", plan="pro")
    assert key.startswith(repo.KEY_PREFIX) and len(key) > 40
    assert record.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert record.prefix == key[:10]

    found = repo.find_key(db, key)
    assert found == record
    assert found.plan == "pro" and found.name == "acme"
    assert repo.workspace_id(db, found.workspace_uid) == found.workspace_id
    assert repo.find_key(db, key + "x") is None
    assert repo.find_key(db, "") is None


def test_second_key_in_an_existing_workspace(db):
    _, first = repo.create_key(db, name="first", plan="default")
    key, second = repo.create_key(db, name="second", plan="default", workspace_uid=first.workspace_uid)
    assert second.workspace_id == first.workspace_id
    assert repo.find_key(db, key).workspace_uid == first.workspace_uid
    assert repo.count_keys(db) == 2
    assert [r.name for r in repo.list_keys(db)] == ["first", "second"]
    with pytest.raises(LookupError):
        repo.create_key(db, name="orphan", plan="default", workspace_uid="ws_nope")
    assert repo.count_keys(db) == 2


def test_only_the_hash_is_stored(db):
    key, _ = repo.create_key(db, name="secret", plan="default")
    with db.connect() as conn:
        rows = conn.execute(select(api_keys)).all()
    assert len(rows) == 1
    for row in rows:
        for value in row:
            assert key not in str(value)
    assert rows[0].key_hash == repo.hash_key(key)


@pytest.mark.parametrize("by", ["prefix", "id"])
def test_revoked_key_is_not_found(db, by):
    key, record = repo.create_key(db, name="gone", plan="default")
    other, _ = repo.create_key(db, name="stays", plan="default")
    assert repo.revoke_key(db, record.prefix if by == "prefix" else str(record.id)) == 1
    assert repo.find_key(db, key) is None
    assert repo.find_key(db, other) is not None
    assert repo.revoke_key(db, record.prefix if by == "prefix" else str(record.id)) == 0  # already revoked
    assert repo.revoke_key(db, "pr_nothing") == 0


def test_templates_are_isolated_by_workspace(db, make):
    a, b = make.workspace("a"), make.workspace("b")
    tpl = make.template(a, name="mine")
    make.template(b, name="theirs")

    assert repo.get_template(db, a.id, tpl.uid).name == "mine"
    assert repo.get_template(db, b.id, tpl.uid) is None
    assert repo.get_template(db, b.id, tpl.uid, version=1) is None
    assert repo.update_template(db, b.id, tpl.uid, "stolen", {"html": "x"}) is None
    assert repo.delete_template(db, b.id, tpl.uid) is False
    assert repo.find_template_by_name(db, b.id, "mine") is None
    assert repo.find_template_by_name(db, a.id, "mine") == tpl.uid

    total, rows = repo.list_templates(db, a.id, 0, 100)
    assert total == 1 and [r.uid for r in rows] == [tpl.uid]
    total, rows = repo.list_templates(db, b.id, 0, 100)
    assert total == 1 and tpl.uid not in [r.uid for r in rows]
    # b's failed attempts changed nothing
    again = repo.get_template(db, a.id, tpl.uid)
    assert again.name == "mine" and again.version == 1


def test_list_templates_pages_newest_first(db, make):
    ws = make.workspace()
    uids = [make.template(ws, name=f"t{i}").uid for i in range(5)]
    total, rows = repo.list_templates(db, ws.id, 0, 2)
    assert total == 5 and [r.uid for r in rows] == uids[::-1][:2]
    total, rows = repo.list_templates(db, ws.id, 4, 2)
    assert [r.uid for r in rows] == [uids[0]]
    assert repo.delete_template(db, ws.id, uids[0]) is True
    total, rows = repo.list_templates(db, ws.id, 0, 100)
    assert total == 4 and uids[0] not in [r.uid for r in rows]
    assert repo.get_template(db, ws.id, uids[0]) is None


def test_get_batch_is_isolated_by_workspace(db, make):
    a, b = make.workspace("a"), make.workspace("b")
    uid, _ = make.batch(a, 2)
    assert repo.get_batch(db, a.id, uid).uid == uid
    assert repo.get_batch(db, b.id, uid) is None
    assert repo.get_batch(db, None, uid).uid == uid  # the dispatcher's view, no workspace
    assert repo.list_batches(db, b.id, 0, 10) == (0, [])
    total, rows = repo.list_batches(db, a.id, 0, 10)
    assert total == 1 and rows[0].uid == uid
    assert repo.count_open_batches(db, a.id) == 1
    assert repo.count_open_batches(db, b.id) == 0


def test_update_template_writes_version_2_and_keeps_version_1(db, make):
    ws = make.workspace()
    v1 = make.template(ws, name="card", html="<p>one</p>", width=600)
    assert v1.version == 1 and v1.current_version == 1

    v2 = repo.update_template(db, ws.id, v1.uid, None, {"html": "<p>two</p>"})
    assert v2.version == 2 and v2.current_version == 2
    assert v2.html == "<p>two</p>"
    assert v2.width == 600 and v2.css == v1.css and v2.pdf == v1.pdf  # unchanged fields carried over
    assert v2.name == "card"
    assert repo.get_template(db, ws.id, v1.uid).html == "<p>two</p>"
    assert repo.get_template(db, ws.id, v1.uid, version=1).html == "<p>one</p>"

    old = repo.template_version_by_id(db, v1.id, 1)
    assert old.html == "<p>one</p>" and old.uid == v1.uid
    assert repo.template_version_by_id(db, v1.id, 2).html == "<p>two</p>"
    assert repo.template_version_by_id(db, v1.id, 3) is None

    v3 = repo.update_template(db, ws.id, v1.uid, "renamed", {"width": 800})
    assert v3.version == 3 and v3.name == "renamed" and v3.width == 800 and v3.html == "<p>two</p>"
    with db.connect() as conn:
        versions = conn.execute(
            select(template_versions.c.version).where(template_versions.c.template_id == v1.id)
            .order_by(template_versions.c.version)
        ).scalars().all()
    assert versions == [1, 2, 3]


def test_pinned_version_survives_template_deletion(db, make):
    ws = make.workspace()
    tpl = make.template(ws, html="<p>pinned</p>")
    assert repo.delete_template(db, ws.id, tpl.uid) is True
    assert repo.delete_template(db, ws.id, tpl.uid) is False
    assert repo.get_template(db, ws.id, tpl.uid) is None
    assert repo.update_template(db, ws.id, tpl.uid, None, {"html": "x"}) is None
    assert repo.template_version_by_id(db, tpl.id, 1).html == "<p>pinned</p>"
    with db.connect() as conn:
        assert conn.execute(select(templates.c.deleted_at).where(templates.c.id == tpl.id)).scalar_one() is not None


def test_assets_upsert(db, make):
    ws = make.workspace()
    tpl = make.template(ws)
    repo.upsert_asset(db, tpl.id, "logo.png", "image/png", 10)
    repo.upsert_asset(db, tpl.id, "font.woff2", "font/woff2", 20)
    repo.upsert_asset(db, tpl.id, "logo.png", "image/png", 30)
    assert [(a.name, a.bytes) for a in repo.list_assets(db, tpl.id)] == [("font.woff2", 20), ("logo.png", 30)]
