"""Batches: accept (JSON variableSets or a CSV/XLSX/JSONL upload), results, list, cancel, retry,
ZIP download and merged PDF. Nothing renders in the request: accepting writes the batch and its
items in one transaction (Service.accept_batch, which wakes the dispatcher). What a batch and its
items look like is built by :mod:`pressrun.jobs.results`, shared with the webhook payloads."""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import ValidationError
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from pressrun.api.auth import authenticate
from pressrun.api.deps import (
    base_url,
    check_template_source,
    file_url,
    service_of,
    template_or_404,
)
from pressrun.api.jsonbatch import MalformedJson, NotAnObject, TooManyItems, parse_batch_body
from pressrun.api.problems import ApiProblem, validation_errors
from pressrun.api.schemas import BatchAccepted, BatchOptions, BatchRenderIn
from pressrun.data import open_rows
from pressrun.db import repo
from pressrun.db.repo import ApiKey, BatchTooLarge
from pressrun.errors import DataError
from pressrun.jobs.archive import ArchiveEntry, stream_zip
from pressrun.jobs.results import batch_summary, has_file, item_result, shown_status
from pressrun.models import BatchStatus, ItemStatus, OutputFormat
from pressrun.naming import OutputNamer
from pressrun.options import Overrides, TemplateDefaults, batch_fields, resolve_locale, resolve_options
from pressrun.rendering.pdf import merge_pdfs
from pressrun.webhooks.policy import RefusedUrl, check_url

router = APIRouter(tags=["batches"])

UPLOAD_TYPES = {
    "text/csv": "csv",
    "application/csv": "csv",
    "text/tab-separated-values": "tsv",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/jsonlines": "jsonl",
}
ITEM_STATUSES = tuple(ItemStatus)


def options_problem(exc: ValidationError) -> ApiProblem:
    """The body is validated here rather than by FastAPI (it may be an upload); the same problem shape."""
    status, detail, errors = validation_errors(exc)
    return ApiProblem(status, detail, code="validation_error", errors=errors)


async def read_upload(request: Request, content_type: str) -> tuple[Path, str, dict[str, Any]]:
    """Spool the uploaded data file to disk; returns its path, format and the options sent with it."""
    service = service_of(request)
    options: dict[str, Any] = dict(request.query_params)
    tmp = tempfile.NamedTemporaryFile(dir=service.settings.data_dir, delete=False, suffix=".upload")
    try:
        fmt = await _spool(request, content_type, tmp, options)
    except BaseException:
        tmp.close()
        Path(tmp.name).unlink(missing_ok=True)
        raise
    # Readers go by extension too (openpyxl refuses a workbook not named .xlsx).
    path = Path(tmp.name).rename(Path(tmp.name).with_suffix(f".{fmt}"))
    return path, fmt, options


async def _spool(request: Request, content_type: str, tmp: Any, options: dict[str, Any]) -> str:
    with tmp:
        if content_type == "multipart/form-data":
            form = await request.form(max_files=1, max_fields=50)
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ApiProblem(422, "file: a multipart batch needs a 'file' field with the CSV, XLSX or JSONL data",
                                 code="validation_error", field="file")
            for name, value in form.multi_items():
                if name != "file" and isinstance(value, str):
                    options[name] = value
            name = (upload.filename or "").lower()
            fmt = next((f for ext, f in ((".csv", "csv"), (".tsv", "tsv"), (".xlsx", "xlsx"), (".jsonl", "jsonl"),
                                         (".ndjson", "jsonl"), (".json", "json")) if name.endswith(ext)), None)
            fmt = fmt or UPLOAD_TYPES.get((upload.content_type or "").split(";")[0].strip().lower())
            if fmt is None:
                raise ApiProblem(415, f"file: {upload.filename!r} is not CSV, TSV, XLSX, JSON or JSONL "
                                 "(by extension or content type)", code="unsupported_media_type", field="file")
            while chunk := await upload.read(1 << 16):
                tmp.write(chunk)
        else:
            fmt = UPLOAD_TYPES[content_type]
            async for chunk in request.stream():
                tmp.write(chunk)
    return fmt


def parse_options(raw: dict[str, Any]) -> BatchOptions:
    known = {k: v for k, v in raw.items() if v != ""}
    for flag in ("zip",):
        if isinstance(known.get(flag), str):
            known[flag] = known[flag].lower() in ("1", "true", "yes", "on")
    try:
        return BatchOptions.model_validate(known)
    except ValidationError as exc:
        raise options_problem(exc) from exc


def rows_from_file(path: Path, fmt: str) -> Iterator[tuple[dict[str, Any] | None, Any]]:
    source = open_rows(path, format=fmt)
    for row in source:
        yield row.values, row.error


@router.post("/templates/{uid}/batch-render", status_code=202)
async def batch_render(uid: str, request: Request, key: ApiKey = Depends(authenticate)) -> Any:
    service = service_of(request)
    template = await template_or_404(request, key.workspace_id, uid)
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    plan = service.plan(key.plan)
    open_batches = await run_in_threadpool(repo.count_open_batches, service.db, key.workspace_id)
    if open_batches >= plan.max_concurrent_batches:  # early, before reading an upload; checked again on write
        raise too_many_batches(open_batches, key.plan, plan.max_concurrent_batches)
    upload: Path | None = None
    try:
        if content_type == "application/json":
            raw = await request.body()
            try:
                # Reads variableSets one element at a time and stops past the plan's limit.
                fields, sets = await run_in_threadpool(parse_batch_body, raw, plan.max_batch_items)
            except TooManyItems as exc:
                raise too_large(exc.limit, key.plan, None) from exc
            except MalformedJson as exc:
                raise ApiProblem(400, f"the request body is not valid JSON: {exc}", code="malformed_json") from exc
            except NotAnObject as exc:
                raise ApiProblem(422, f"body: {exc}", code="validation_error",
                                 errors=[{"field": "body", "message": str(exc)}]) from exc
            payload = fields if sets is None else {**fields, "variableSets": sets}
            try:
                body = await run_in_threadpool(BatchRenderIn.model_validate, payload)
            except ValidationError as exc:
                raise options_problem(exc) from exc
            options: BatchOptions = body
            sets = body.variable_sets
            if not sets:
                raise ApiProblem(422, f"variableSets is empty; send 1 to {plan.max_batch_items} variable sets",
                                 code="empty_batch", field="variableSets", limit=plan.max_batch_items)
            rows: Any = ((values, None) for values in sets)
        elif content_type == "multipart/form-data" or content_type in UPLOAD_TYPES:
            upload, fmt, raw_options = await read_upload(request, content_type)
            options = parse_options(raw_options)
            try:
                # Header and first row: an empty or unreadable file is a 422 now. In a worker thread: the file is
                # the client's, and its first row may be costly to reach (an XLSX is unzipped and parsed).
                await run_in_threadpool(open_rows, upload, format=fmt)
            except DataError as exc:
                raise ApiProblem(422, exc.message.replace(upload.name, "the uploaded file"), code="data_error",
                                 **{k: v for k, v in exc.details.items() if k in ("line", "column")}) from exc
            rows = rows_from_file(upload, fmt)
        else:
            raise ApiProblem(415, f"Content-Type {content_type!r} is not accepted; send application/json with "
                             f"variableSets, or a data file as multipart/form-data or one of "
                             f"{', '.join(sorted(UPLOAD_TYPES))}", code="unsupported_media_type")
        if options.webhook_url is not None:
            try:
                await check_url(str(options.webhook_url), allow_private=service.settings.webhooks.allow_private_networks)
            except RefusedUrl as exc:
                raise ApiProblem(422, f"webhookUrl: {exc}", code="webhook_url_refused", field="webhookUrl",
                                 value=str(options.webhook_url)) from exc
        # Resolved and checked once, now, not per item (an image its format cannot hold would fail every
        # item alike); the items render with exactly these options.
        defaults = TemplateDefaults.of_stored(template)
        overrides = Overrides(format=options.format, width_px=options.width, height_px=options.height,
                              quality=options.quality, scale=options.scale, locale=options.locale)
        resolved = resolve_options(defaults, overrides)
        if options.filename:
            await run_in_threadpool(check_template_source, request, options.filename, "filename")
        batch = {
            "workspace_id": key.workspace_id, "template_id": template.id, "template_version": template.version,
            **batch_fields(resolved), "locale": resolve_locale(defaults, overrides),
            "concurrency": options.concurrency, "filename": options.filename, "zip": options.zip,
            "webhook_url": str(options.webhook_url) if options.webhook_url else None,
        }
        try:
            batch_uid, total = await service.accept_batch(batch, rows, plan.max_batch_items,
                                                          plan.max_concurrent_batches)
        except repo.TooManyOpenBatches as exc:
            raise too_many_batches(exc.open_batches, key.plan, exc.limit) from exc
        except BatchTooLarge as exc:
            raise too_large(exc.limit, key.plan, None) from exc
        except repo.EmptyBatch as exc:
            raise ApiProblem(422, "the uploaded file has no data rows", code="empty_batch") from exc
        except DataError as exc:
            raise ApiProblem(422, exc.message.replace(upload.name if upload else "", "the uploaded file"),
                             code="data_error", **{k: v for k, v in exc.details.items() if k in ("line",)}) from exc
    finally:
        if upload is not None:
            upload.unlink(missing_ok=True)
    row = await run_in_threadpool(repo.get_batch, service.db, key.workspace_id, batch_uid)
    # The dispatcher may already have started it; to the client it is accepted and not yet done.
    status = BatchStatus.PENDING if row.status in BatchStatus.open() else row.status
    return BatchAccepted(batch_id=batch_uid, status=status, total_items=total,
                         message=f"batch accepted: {total} items queued").model_dump(by_alias=True)


def too_many_batches(open_batches: int, plan: str, limit: int) -> ApiProblem:
    return ApiProblem(429, f"this workspace already has {open_batches} unfinished batches; the {plan!r} plan "
                      f"allows {limit} at once", code="too_many_batches", limit=limit, headers={"Retry-After": "30"})


def too_large(limit: int, plan: str, got: int | None) -> ApiProblem:
    got_text = f" (got {got})" if got is not None else ""
    return ApiProblem(413, f"a batch on the {plan!r} plan may have at most {limit} items{got_text}",
                      code="batch_too_large", limit=limit)


async def batch_or_404(request: Request, key: ApiKey, batch_id: str) -> Any:
    row = await run_in_threadpool(repo.get_batch, service_of(request).db, key.workspace_id, batch_id)
    if row is None:
        raise ApiProblem(404, f"no batch with id {batch_id!r} in this workspace", code="batch_not_found",
                         batchId=batch_id)
    return row


def zip_link(request: Request, row: Any) -> dict[str, str]:
    """Where the ZIP is, for a batch whose client asked for one (``zip``); nothing otherwise."""
    return {"zipUrl": f"{base_url(request)}/templates/batch/{row.uid}/download"} if row.zip else {}


@router.get("/templates/batch")
async def list_batches(request: Request, offset: int = Query(0, ge=0, le=2**31), limit: int = Query(20, ge=1, le=100),
                       key: ApiKey = Depends(authenticate)) -> dict[str, Any]:
    service = service_of(request)
    total, rows = await run_in_threadpool(repo.list_batches, service.db, key.workspace_id, offset, limit)
    out = []
    for row in rows:
        counts = await run_in_threadpool(repo.item_counts, service.db, row.id)
        out.append(batch_summary(row, counts))
    return {"batches": out, "total": total, "offset": offset, "limit": limit}


@router.get("/templates/batch/{batch_id}/results")
async def batch_results(
    batch_id: str,
    request: Request,
    offset: int = Query(0, ge=0, le=2**31),
    limit: int = Query(100, ge=1, le=1000),
    status: str | None = Query(None),
    key: ApiKey = Depends(authenticate),
) -> dict[str, Any]:
    if status is not None and status not in ITEM_STATUSES:
        raise ApiProblem(422, f"status: {status!r} is not an item status; valid: {', '.join(ITEM_STATUSES)}",
                         code="validation_error", field="status", value=status)
    service = service_of(request)
    row = await batch_or_404(request, key, batch_id)
    counts = await run_in_threadpool(repo.item_counts, service.db, row.id)
    items = await run_in_threadpool(repo.list_items, service.db, row.id, offset, limit, status)
    link = functools.partial(file_url, request)
    return {**zip_link(request, row), **batch_summary(row, counts), "offset": offset, "limit": limit,
            "results": [item_result(item, link) for item in items]}


@router.post("/templates/batch/{batch_id}/cancel")
async def cancel_batch(batch_id: str, request: Request, key: ApiKey = Depends(authenticate)) -> dict[str, Any]:
    service = service_of(request)
    row = await batch_or_404(request, key, batch_id)
    if row.status in BatchStatus.finished():
        raise ApiProblem(409, f"batch {batch_id!r} has already finished ({row.status}); only pending or processing "
                         "batches can be cancelled", code="batch_finished", batchStatus=row.status)
    status = await service.cancel_batch(row.id)
    counts = await run_in_threadpool(repo.item_counts, service.db, row.id)
    row = await batch_or_404(request, key, batch_id)
    message = "batch cancelled" if status == BatchStatus.CANCELLED else "cancelling: items in flight will finish"
    return {**batch_summary(row, counts), "message": message}


@router.post("/templates/batch/{batch_id}/retry")
async def retry_batch(batch_id: str, request: Request, key: ApiKey = Depends(authenticate)) -> dict[str, Any]:
    service = service_of(request)
    row = await batch_or_404(request, key, batch_id)
    count = await service.retry_batch(row.id)
    if count == 0:
        raise ApiProblem(409, f"batch {batch_id!r} has no failed items to retry", code="nothing_to_retry")
    counts = await run_in_threadpool(repo.item_counts, service.db, row.id)
    row = await batch_or_404(request, key, batch_id)
    return {**batch_summary(row, counts), "retriedCount": count, "message": f"{count} failed items queued again"}


def archive_entries(service: Any, row: Any) -> Iterator[ArchiveEntry]:
    namer = OutputNamer(OutputFormat(row.format), row.total_items)
    for item in repo.iter_items(service.db, row.id):
        with_file = has_file(item)
        yield ArchiveEntry(
            index=item.idx,
            status=shown_status(item),
            name=namer.assign(item.file_name, item.idx) if with_file else None,
            path=service.storage.path(item.output_key) if with_file else None,
            error_code=item.error_code,
            error_message=item.error_message,
        )


@router.get("/templates/batch/{batch_id}/download")
async def download(batch_id: str, request: Request, merge: str | None = Query(None),
                   key: ApiKey = Depends(authenticate)) -> Any:
    service = service_of(request)
    row = await batch_or_404(request, key, batch_id)
    if merge is not None:
        if merge != "pdf":
            raise ApiProblem(422, f"merge: {merge!r} is not supported; the only value is 'pdf'",
                             code="validation_error", field="merge", value=merge)
        if row.format != "pdf":
            raise ApiProblem(409, f"batch {batch_id!r} renders {row.format}; ?merge=pdf needs a PDF batch",
                             code="not_a_pdf_batch")
        paths = await run_in_threadpool(
            lambda: [e.path for e in archive_entries(service, row) if e.path is not None and e.path.exists()]
        )
        if not paths:
            raise ApiProblem(409, f"batch {batch_id!r} has no completed PDFs to merge", code="nothing_to_download")
        tmp = Path(tempfile.mkstemp(dir=service.settings.data_dir, suffix=".pdf")[1])
        try:
            await run_in_threadpool(merge_pdfs, paths, tmp)
        except BaseException:  # whatever went wrong, the temporary file must not stay behind
            tmp.unlink(missing_ok=True)
            raise
        return FileResponse(tmp, media_type="application/pdf", filename=f"{batch_id}.pdf",
                            background=BackgroundTask(tmp.unlink, missing_ok=True))
    return StreamingResponse(
        stream_zip(archive_entries(service, row)),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{batch_id}.zip"'},
    )
