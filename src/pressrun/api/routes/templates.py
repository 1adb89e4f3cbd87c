"""/templates: create, list, read, update (new version), delete, variables, assets."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile  # what request.form() holds; fastapi.UploadFile is a subclass

from pressrun.api.auth import authenticate
from pressrun.api.deps import check_template_source, service_of, template_not_found, template_or_404
from pressrun.api.problems import ApiProblem
from pressrun.api.schemas import TemplateIn, TemplateOut, TemplateUpdate
from pressrun.db import repo
from pressrun.db.repo import ApiKey
from pressrun.models import PdfOptions
from pressrun.templating.prepared import asset_key

router = APIRouter(tags=["templates"])

ASSET_TYPES = {
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp",
    ".svg": "image/svg+xml", ".avif": "image/avif", ".woff": "font/woff", ".woff2": "font/woff2",
    ".ttf": "font/ttf", ".otf": "font/otf", ".css": "text/css",
}
ASSET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
MAX_ASSET_BYTES = 20 * 2**20


def version_fields(body: TemplateIn | TemplateUpdate, *, partial: bool,
                   current_pdf: dict[str, Any] | None = None) -> dict[str, Any]:
    """The version columns from a request body. ``partial`` (PUT): only the fields sent; a partial
    ``pdf`` object is applied over ``current_pdf``, so ``{"pdf": {"landscape": true}}`` keeps the page size."""
    data = body.model_dump(exclude_unset=partial, exclude={"name"})
    if "format" in data and data["format"] == "jpg":
        data["format"] = "jpeg"
    if "pdf" in data:
        pdf = data.pop("pdf")
        if pdf is not None and partial:
            pdf = {**(current_pdf or {}), **pdf}
        data["pdf"] = PdfOptions.from_dict(pdf).to_dict()
    elif not partial:
        data["pdf"] = PdfOptions().to_dict()
    if partial:
        data = {k: v for k, v in data.items() if v is not None or k in ("locale", "sample_data")}
    return data


def pdf_out(pdf: PdfOptions) -> dict[str, Any]:
    return {"pageSize": pdf.page_size, "landscape": pdf.landscape, "marginMm": pdf.margin_mm}


def template_out(row: Any, assets: list[Any] | None = None) -> dict[str, Any]:
    out = TemplateOut(
        uid=row.uid, name=row.name, version=row.version, html=row.html, css=row.css, width=row.width,
        height=row.height, format=row.format, quality=row.quality, scale=row.scale, locale=row.locale,
        sample_data=row.sample_data, column_types=row.column_types or {},
        pdf=pdf_out(PdfOptions.from_dict(row.pdf)),
        assets=[{"name": a.name, "url": f"assets/{a.name}", "contentType": a.content_type, "bytes": a.bytes}
                for a in assets or []],
        created_at=repo.aware(row.created_at), updated_at=repo.aware(row.updated_at),
    )
    return out.model_dump(by_alias=True, mode="json")


@router.post("/templates", status_code=201)
async def create_template(body: TemplateIn, request: Request, key: ApiKey = Depends(authenticate)) -> dict[str, Any]:
    await run_in_threadpool(check_template_source, request, body.html)
    service = service_of(request)
    uid = await run_in_threadpool(repo.create_template, service.db, key.workspace_id, body.name,
                                  version_fields(body, partial=False))
    row = await run_in_threadpool(repo.get_template, service.db, key.workspace_id, uid)
    return template_out(row)


@router.get("/templates")
async def list_templates(
    request: Request,
    offset: int = Query(0, ge=0, le=2**31),
    limit: int = Query(20, ge=1, le=100),
    key: ApiKey = Depends(authenticate),
) -> dict[str, Any]:
    total, rows = await run_in_threadpool(repo.list_templates, service_of(request).db, key.workspace_id, offset, limit)
    return {"templates": [template_out(r) for r in rows], "total": total, "offset": offset, "limit": limit}


@router.get("/templates/{uid}")
async def get_template(uid: str, request: Request, key: ApiKey = Depends(authenticate)) -> dict[str, Any]:
    row = await template_or_404(request, key.workspace_id, uid)
    assets = await run_in_threadpool(repo.list_assets, service_of(request).db, row.id)
    return template_out(row, assets)


@router.put("/templates/{uid}")
async def update_template(uid: str, body: TemplateUpdate, request: Request,
                          key: ApiKey = Depends(authenticate)) -> dict[str, Any]:
    current = await template_or_404(request, key.workspace_id, uid)
    if body.html is not None:
        await run_in_threadpool(check_template_source, request, body.html)
    changes = version_fields(body, partial=True, current_pdf=current.pdf)
    row = await run_in_threadpool(repo.update_template, service_of(request).db, key.workspace_id, uid, body.name,
                                  changes)
    if row is None:
        raise template_not_found(uid)
    assets = await run_in_threadpool(repo.list_assets, service_of(request).db, row.id)
    return template_out(row, assets)  # the same representation as GET


@router.delete("/templates/{uid}", status_code=204)
async def delete_template(uid: str, request: Request, key: ApiKey = Depends(authenticate)) -> None:
    if not await run_in_threadpool(repo.delete_template, service_of(request).db, key.workspace_id, uid):
        raise template_not_found(uid)


@router.get("/templates/{uid}/variables")
async def template_variables(uid: str, request: Request, key: ApiKey = Depends(authenticate)) -> dict[str, Any]:
    row = await template_or_404(request, key.workspace_id, uid)
    variables = await run_in_threadpool(check_template_source, request, row.html)
    return {"templateUid": uid, "version": row.version, "variables": variables}


@router.post("/templates/{uid}/assets", status_code=201)
async def upload_assets(uid: str, request: Request, key: ApiKey = Depends(authenticate)) -> dict[str, Any]:
    row = await template_or_404(request, key.workspace_id, uid)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiProblem(415, "upload assets as multipart/form-data with one or more 'file' fields",
                         code="unsupported_media_type")
    form = await request.form(max_files=50)
    uploads = [v for v in form.getlist("file") if isinstance(v, UploadFile)]
    if not uploads:
        raise ApiProblem(422, "no 'file' field in the upload", code="validation_error", field="file")
    service = service_of(request)
    saved = []
    for upload in uploads:
        # The name as sent: '../x.png' or 'sub/x.png' is refused, not quietly stored as 'x.png'.
        name = upload.filename or ""
        suffix = Path(name).suffix.lower()
        if not ASSET_NAME.match(name) or suffix not in ASSET_TYPES:
            raise ApiProblem(
                422,
                f"file: {name!r} is not an allowed asset name; use letters, digits, '.', '-', '_' and one of "
                f"{', '.join(sorted(ASSET_TYPES))}",
                code="validation_error", field="file", value=name,
            )
        with tempfile.NamedTemporaryFile(dir=service.settings.data_dir, delete=False) as tmp:
            size = 0
            while chunk := await upload.read(1 << 16):
                size += len(chunk)
                if size > MAX_ASSET_BYTES:
                    Path(tmp.name).unlink(missing_ok=True)
                    raise ApiProblem(413, f"file: {name!r} is larger than {MAX_ASSET_BYTES // 2**20} MiB",
                                     code="asset_too_large", field="file")
                tmp.write(chunk)
        try:
            await run_in_threadpool(service.storage.put_file, asset_key(uid, name), Path(tmp.name))
        finally:
            Path(tmp.name).unlink(missing_ok=True)
        await run_in_threadpool(repo.upsert_asset, service.db, row.id, name, ASSET_TYPES[suffix], size)
        saved.append({"name": name, "url": f"assets/{name}", "contentType": ASSET_TYPES[suffix], "bytes": size})
    return {"templateUid": uid, "assets": saved}
