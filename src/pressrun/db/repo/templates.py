"""Templates, their immutable versions (every update writes a new one) and their asset records."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Select, and_, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Row

from pressrun.db.engine import reading
from pressrun.db.repo.common import new_uid, now
from pressrun.db.schema import template_assets, template_versions, templates

VERSION_FIELDS = ("html", "css", "width", "height", "format", "quality", "scale", "locale", "pdf",
                  "sample_data", "column_types")


def create_template(engine: Engine, workspace_id: int, name: str, version: dict[str, Any]) -> str:
    uid = new_uid("tpl")
    stamp = now()
    with engine.begin() as conn:
        template_id = conn.execute(
            insert(templates)
            .values(uid=uid, workspace_id=workspace_id, name=name, current_version=1, created_at=stamp,
                    updated_at=stamp)
            .returning(templates.c.id)
        ).scalar_one()
        conn.execute(insert(template_versions).values(template_id=template_id, version=1, created_at=stamp,
                                                      **version))
    return uid


def get_template(engine: Engine, workspace_id: int, uid: str, version: int | None = None) -> Row | None:
    """The template with its current (or the given) version's fields."""
    with reading(engine) as conn:
        return _template_row(conn, workspace_id, uid, version)


def _with_version(version: int | None) -> Select:
    """Templates joined to one version each: ``version``, or the template's current one."""
    version_match = template_versions.c.version == (version if version is not None else templates.c.current_version)
    return (
        select(templates, *[template_versions.c[f] for f in VERSION_FIELDS], template_versions.c.version)
        .join(template_versions, and_(template_versions.c.template_id == templates.c.id, version_match))
    )


def _template_row(conn: Connection, workspace_id: int | None, uid: str, version: int | None) -> Row | None:
    query = _with_version(version).where(templates.c.uid == uid, templates.c.deleted_at.is_(None))
    if workspace_id is not None:
        query = query.where(templates.c.workspace_id == workspace_id)
    return conn.execute(query).first()


def template_version_by_id(engine: Engine, template_id: int, version: int) -> Row | None:
    """For the dispatcher: a batch's pinned version, even if the template was deleted since."""
    with reading(engine) as conn:
        return conn.execute(
            select(templates.c.uid, templates.c.name, *[template_versions.c[f] for f in VERSION_FIELDS])
            .join(template_versions, template_versions.c.template_id == templates.c.id)
            .where(templates.c.id == template_id, template_versions.c.version == version)
        ).first()


def list_templates(engine: Engine, workspace_id: int, offset: int, limit: int) -> tuple[int, list[Row]]:
    with reading(engine) as conn:
        where = and_(templates.c.workspace_id == workspace_id, templates.c.deleted_at.is_(None))
        total = conn.execute(select(func.count()).select_from(templates).where(where)).scalar_one()
        rows = conn.execute(
            _with_version(None)
            .where(where)
            .order_by(templates.c.created_at.desc(), templates.c.id.desc())
            .offset(offset)
            .limit(limit)
        ).all()
    return total, rows


def update_template(engine: Engine, workspace_id: int, uid: str, name: str | None,
                    changes: dict[str, Any]) -> Row | None:
    """Write a new version with ``changes`` applied over the current one. Running batches keep theirs."""
    with engine.begin() as conn:
        # Serialise updates of one template (PostgreSQL; SQLite's BEGIN IMMEDIATE already does), so
        # each reads the version the previous one wrote instead of both writing the same number.
        conn.execute(select(templates.c.id).where(templates.c.uid == uid, templates.c.workspace_id == workspace_id)
                     .with_for_update())
        current = _template_row(conn, workspace_id, uid, None)
        if current is None:
            return None
        stamp = now()
        version = {f: getattr(current, f) for f in VERSION_FIELDS} | changes
        new_version = current.version + 1
        conn.execute(insert(template_versions).values(template_id=current.id, version=new_version,
                                                      created_at=stamp, **version))
        conn.execute(
            update(templates)
            .where(templates.c.id == current.id)
            .values(current_version=new_version, updated_at=stamp, name=name or current.name)
        )
        return _template_row(conn, workspace_id, uid, None)


def delete_template(engine: Engine, workspace_id: int, uid: str) -> bool:
    """Soft delete: batches already accepted still render with their pinned version."""
    with engine.begin() as conn:
        return bool(
            conn.execute(
                update(templates)
                .where(templates.c.uid == uid, templates.c.workspace_id == workspace_id,
                       templates.c.deleted_at.is_(None))
                .values(deleted_at=now())
            ).rowcount
        )


def find_template_by_name(engine: Engine, workspace_id: int, name: str) -> str | None:
    with reading(engine) as conn:
        return conn.execute(
            select(templates.c.uid).where(templates.c.workspace_id == workspace_id, templates.c.name == name,
                                          templates.c.deleted_at.is_(None))
        ).scalar_one_or_none()


def upsert_asset(engine: Engine, template_id: int, name: str, content_type: str, size: int) -> None:
    with engine.begin() as conn:
        conn.execute(delete(template_assets).where(template_assets.c.template_id == template_id,
                                                   template_assets.c.name == name))
        conn.execute(insert(template_assets).values(template_id=template_id, name=name, content_type=content_type,
                                                    bytes=size, created_at=now()))


def list_assets(engine: Engine, template_id: int) -> list[Row]:
    with reading(engine) as conn:
        return conn.execute(
            select(template_assets).where(template_assets.c.template_id == template_id)
            .order_by(template_assets.c.name)
        ).all()
