"""Workspaces and their API keys: create, look up by key (only its hash is stored), list, revoke."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.engine import Row

from pressrun.db.engine import reading
from pressrun.db.repo.common import hash_key, new_uid, now
from pressrun.db.schema import api_keys, workspaces

KEY_PREFIX = "pr_"


@dataclass(frozen=True)
class ApiKey:
    id: int
    workspace_id: int
    workspace_uid: str
    name: str
    prefix: str
    plan: str
    key_hash: str


def create_key(engine: Engine, *, name: str, plan: str, workspace_uid: str | None = None) -> tuple[str, ApiKey]:
    """Create an API key (and a workspace for it unless ``workspace_uid`` names one). Returns the key
    itself, which is never stored, and its record."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        if workspace_uid is None:
            workspace_uid = new_uid("ws")
            workspace_id = conn.execute(
                insert(workspaces).values(uid=workspace_uid, name=name, created_at=now()).returning(workspaces.c.id)
            ).scalar_one()
        else:
            workspace_id = conn.execute(
                select(workspaces.c.id).where(workspaces.c.uid == workspace_uid)
            ).scalar_one_or_none()
            if workspace_id is None:
                raise LookupError(f"no workspace {workspace_uid!r}")
        key_hash = hash_key(key)
        key_id = conn.execute(
            insert(api_keys)
            .values(workspace_id=workspace_id, name=name, prefix=key[:10], key_hash=key_hash, plan=plan,
                    created_at=now())
            .returning(api_keys.c.id)
        ).scalar_one()
    return key, ApiKey(key_id, workspace_id, workspace_uid, name, key[:10], plan, key_hash)


def find_key(engine: Engine, key: str) -> ApiKey | None:
    with reading(engine) as conn:
        row = conn.execute(
            select(api_keys, workspaces.c.uid.label("workspace_uid"))
            .join(workspaces, workspaces.c.id == api_keys.c.workspace_id)
            .where(api_keys.c.key_hash == hash_key(key), api_keys.c.revoked_at.is_(None))
        ).first()
    if row is None:
        return None
    return ApiKey(row.id, row.workspace_id, row.workspace_uid, row.name, row.prefix, row.plan, row.key_hash)


def list_keys(engine: Engine) -> list[Row]:
    with reading(engine) as conn:
        return list(
            conn.execute(
                select(api_keys, workspaces.c.uid.label("workspace_uid"))
                .join(workspaces, workspaces.c.id == api_keys.c.workspace_id)
                .order_by(api_keys.c.id)
            )
        )


def revoke_key(engine: Engine, prefix_or_id: str) -> int:
    with engine.begin() as conn:
        condition = api_keys.c.prefix == prefix_or_id
        if prefix_or_id.isdigit():
            condition = api_keys.c.id == int(prefix_or_id)
        return conn.execute(
            update(api_keys).where(condition, api_keys.c.revoked_at.is_(None)).values(revoked_at=now())
        ).rowcount


def count_keys(engine: Engine) -> int:
    with reading(engine) as conn:
        return conn.execute(select(func.count()).select_from(api_keys)).scalar_one()


def first_workspace_uid(engine: Engine) -> str | None:
    with reading(engine) as conn:
        return conn.execute(select(workspaces.c.uid).order_by(workspaces.c.id).limit(1)).scalar_one_or_none()


def workspace_id(engine: Engine, uid: str) -> int | None:
    with reading(engine) as conn:
        return conn.execute(select(workspaces.c.id).where(workspaces.c.uid == uid)).scalar_one_or_none()
