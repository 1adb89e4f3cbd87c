"""``pressrun serve`` and ``pressrun keys``: the HTTP service and its API keys.

Exit codes as for every command (pressrun.cli): 2 when the service cannot start (a setting is wrong,
the database cannot be reached or migrated), printed as ``error: …`` naming the setting."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from pressrun.cli import Fatal, fatal_from
from pressrun.db import connect, migrate, repo
from pressrun.errors import PressrunError
from pressrun.settings import Settings

log = logging.getLogger(__name__)


def load(**overrides: object) -> Settings:
    try:
        return Settings.load(**overrides)
    except PressrunError as exc:
        raise fatal_from(exc) from exc


def seed_templates(service: object, folder: Path, workspace_uid: str) -> list[str]:
    """Import each template folder under ``folder`` into the workspace, unless one of that name exists."""
    from pressrun.seeding import import_template_folder

    imported = []
    for path in sorted(p for p in folder.iterdir() if (p / "template.html").is_file()):
        if import_template_folder(service, path, workspace_uid):
            imported.append(path.name)
    return imported


@click.command()
@click.option("--host", help="Address to listen on (default: setting api.host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default: setting api.port, 8000).")
@click.option("--seed-templates", "seed", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Import every template folder in this directory into the first workspace (by name, once).")
def serve(host: str | None, port: int | None, seed: Path | None) -> None:
    """Start the HTTP API with an embedded worker (SQLite and local files under ./data by default)."""
    import uvicorn

    from pressrun.api import create_app
    from pressrun.service import Service

    settings = load(**{"api.host": host, "api.port": port})
    try:
        service = Service(settings)
        service.migrate()
    except PressrunError as exc:
        raise fatal_from(exc) from exc
    if repo.count_keys(service.db) == 0:
        key, record = repo.create_key(service.db, name="default", plan="default")
        click.echo(
            "pressrun: created the first API key (shown only now; store it safely):\n\n"
            f"    {key}\n\n"
            f"workspace {record.workspace_uid}, plan 'default'. Manage keys with `pressrun keys`.\n",
            err=True,
        )
    if seed is not None:
        workspace = repo.first_workspace_uid(service.db)
        assert workspace is not None
        imported = seed_templates(service, seed, workspace)
        if imported:
            click.echo(f"pressrun: imported templates: {', '.join(imported)}", err=True)
    app = create_app(service, manage_service=True)
    click.echo(f"pressrun: serving on http://{settings.api.host}:{settings.api.port} (docs at /docs)", err=True)
    uvicorn.run(app, host=settings.api.host, port=settings.api.port, log_level="warning", access_log=False)


@click.group()
def keys() -> None:
    """Create, list and revoke API keys."""


def key_db() -> object:
    settings = load()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        engine = connect(settings.resolved_database_url)
        migrate(engine)
    except PressrunError as exc:
        raise fatal_from(exc) from exc
    return engine


@keys.command("create")
@click.option("--name", required=True, help="What the key is for (shown in `keys list`).")
@click.option("--plan", default="default", show_default=True, help="Plan name (setting api.plans).")
@click.option("--workspace", help="Add the key to this workspace uid (default: a new workspace).")
def keys_create(name: str, plan: str, workspace: str | None) -> None:
    """Create a key; it is printed once and stored only as a hash."""
    settings = load()
    if plan not in settings.api.plans:
        raise click.BadParameter(f"{plan!r} is not a plan; plans: {', '.join(settings.api.plans)}", param_hint="--plan")
    engine = key_db()
    try:
        key, record = repo.create_key(engine, name=name, plan=plan, workspace_uid=workspace)  # type: ignore[arg-type]
    except LookupError as exc:
        raise click.BadParameter(str(exc), param_hint="--workspace") from exc
    click.echo(key)
    click.echo(f"workspace {record.workspace_uid}, plan {plan!r} (the key is shown only now)", err=True)


@keys.command("list")
def keys_list() -> None:
    """List keys (prefix, name, workspace, plan, created, revoked)."""
    engine = key_db()
    for row in repo.list_keys(engine):  # type: ignore[arg-type]
        revoked = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
        click.echo(f"{row.id}\t{row.prefix}…\t{row.name}\t{row.workspace_uid}\t{row.plan}\t"
                   f"{row.created_at:%Y-%m-%d %H:%M}\t{revoked}")


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key by its id or prefix (from `keys list`)."""
    engine = key_db()
    if not repo.revoke_key(engine, key_id.rstrip("…")):  # type: ignore[arg-type]
        raise Fatal(f"no active key with id or prefix {key_id!r}")
    click.echo(f"revoked {key_id}")
