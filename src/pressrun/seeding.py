"""Import a template folder (as used by ``pressrun render``) into a workspace of the service."""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path
from typing import Any

from pressrun.db import repo
from pressrun.templating.bundle import STYLESHEET_NAME, load_template
from pressrun.templating.prepared import asset_key


def import_template_folder(service: Any, folder: Path, workspace_uid: str) -> str | None:
    """Create the template (and upload its assets) unless the workspace has one of that name.
    Returns the new template's uid, or None when it already existed."""
    workspace_id = repo.workspace_id(service.db, workspace_uid)
    if workspace_id is None:
        raise LookupError(f"no workspace {workspace_uid!r}")
    bundle = load_template(folder)
    manifest = bundle.manifest
    if repo.find_template_by_name(service.db, workspace_id, manifest.name) is not None:
        return None
    css_path = folder / STYLESHEET_NAME
    version = {
        "html": bundle.source,
        "css": css_path.read_text(encoding="utf-8") if css_path.is_file() else "",
        **manifest.defaults.to_stored(),
        # TOML dates are not JSON; the API stores sample data as JSON, as a client would send it.
        "sample_data": json.loads(json.dumps(manifest.sample[0], default=str)) if manifest.sample else None,
        "column_types": dict(manifest.column_types),
    }
    uid = repo.create_template(service.db, workspace_id, manifest.name, version)
    template = repo.get_template(service.db, workspace_id, uid)
    assets = folder / "assets"
    if assets.is_dir():
        for path in sorted(p for p in assets.rglob("*") if p.is_file()):
            relative = path.relative_to(assets).as_posix()
            service.storage.put_file(asset_key(uid, relative), path)
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            repo.upsert_asset(service.db, template.id, relative, content_type, path.stat().st_size)
    return uid
