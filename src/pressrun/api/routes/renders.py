"""Synchronous renders: a stored template with variables, raw HTML to an image, HTML to a PDF,
and several pages into one PDF. Each answers JSON with a signed URL, or the file itself when the
client asks for it in ``Accept`` (``image/*`` or ``application/pdf``)."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from pressrun.api.auth import authenticate
from pressrun.api.deps import check_template_source, file_url, service_of, template_or_404
from pressrun.api.problems import ApiProblem
from pressrun.api.schemas import ImageIn, MultiPageIn, PdfLayoutIn, PdfRenderIn, TemplateRenderIn
from pressrun.db import repo
from pressrun.db.repo import ApiKey
from pressrun.errors import RowError
from pressrun.jobs.dispatcher import asset_root, pdf_options
from pressrun.models import OutputFormat, PdfOptions, RenderOptions, RenderResult
from pressrun.rendering.pdf import merge_pdfs_bytes, page_count
from pressrun.templating.bundle import build_document

router = APIRouter(tags=["renders"])


def wants_file(request: Request, fmt: OutputFormat) -> bool:
    accept = request.headers.get("accept", "").lower()
    if fmt is OutputFormat.PDF:
        return "application/pdf" in accept
    return "image/" in accept


async def respond(request: Request, key: ApiKey, result: RenderResult, started: float) -> Response | dict[str, Any]:
    elapsed_ms = round((time.perf_counter() - started) * 1000)
    service = service_of(request)
    if wants_file(request, result.format):
        await emit(request, key, {"format": result.format.value, "width": result.width_px,
                                  "height": result.height_px, "bytes": len(result.data), "url": None}, failed=False)
        return Response(result.data, media_type=result.format.media_type,
                        headers={"X-Render-Time-Ms": str(elapsed_ms)})
    storage_key = f"renders/{repo.new_uid('r')}.{result.format.extension}"
    made_at = datetime.now(UTC)
    expires_at = service.expires_at(made_at)
    await run_in_threadpool(service.storage.put, storage_key, result.data)
    await run_in_threadpool(repo.record_file, service.db, key.workspace_id, storage_key, len(result.data), expires_at)
    await emit(request, key, {"format": result.format.value, "width": result.width_px, "height": result.height_px,
                              "bytes": len(result.data), "url": service.file_url(storage_key, made_at)},
               failed=False)
    body: dict[str, Any] = {
        "url": file_url(request, storage_key, made_at),
        "width": result.width_px,
        "height": result.height_px,
        "format": result.format.value,
        "bytes": len(result.data),
        "renderTimeMs": elapsed_ms,
        "expiresAt": expires_at.isoformat(),
    }
    if result.format is OutputFormat.PDF:
        body["pages"] = result.pages
    return body


async def emit(request: Request, key: ApiKey, data: dict[str, Any], *, failed: bool) -> None:
    """render.completed / render.failed for subscribed webhooks (single renders)."""
    service = service_of(request)
    await run_in_threadpool(service.events.single_render, service.db, key.workspace_id,
                            {"endpoint": request.url.path, **data}, failed)
    service.webhooks.wake()


def emits_failures(route: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Send render.failed to subscribed webhooks when a single render fails because of its input."""

    @functools.wraps(route)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await route(*args, **kwargs)
        except ApiProblem as problem:
            if getattr(problem, "row_error", False):
                await emit(kwargs["request"], kwargs["key"],
                           {"error": {"code": problem.code, "message": problem.detail}}, failed=True)
            raise

    return wrapper


def row_failed(exc: RowError) -> ApiProblem:
    """A render that fails because of its input is the client's to fix: 422 with the row error's code."""
    problem = ApiProblem(422, exc.message, code=exc.code, **{k: v for k, v in exc.details.items()
                                                         if isinstance(v, str | int | float | bool)})
    problem.row_error = True  # type: ignore[attr-defined]
    return problem


def fmt_of(value: str | None, default: str) -> OutputFormat:
    return OutputFormat.parse(value or default)


async def render_template_html(request: Request, key: ApiKey, uid: str, variables: dict[str, Any],
                               locale: str | None) -> tuple[Any, str]:
    row = await template_or_404(request, key.workspace_id, uid)
    service = service_of(request)
    prepared = await run_in_threadpool(service.templates.get, row.id, row.version)
    try:
        # Off the event loop: a template may spend its whole time budget, and the server must not stall.
        html = await run_in_threadpool(
            lambda: prepared.template.render(prepared.row(dict(variables)), locale=locale or row.locale)
        )
    except RowError as exc:
        raise row_failed(exc) from exc
    return row, build_document(html, stylesheet=False, css=row.css)


async def run_render(request: Request, document: str, options: RenderOptions, root: Any = None) -> RenderResult:
    try:
        result = await service_of(request).renderer.render(document, options, asset_root=root)
    except RowError as exc:
        raise row_failed(exc) from exc
    if options.format is OutputFormat.PDF:
        pages = await asyncio.to_thread(page_count, result.data)
        result = RenderResult(result.data, result.format, result.width_px, result.height_px, pages, result.render_ms)
    return result


@router.post("/templates/{uid}/render")
@emits_failures
async def render_template(uid: str, body: TemplateRenderIn, request: Request,
                          key: ApiKey = Depends(authenticate)) -> Any:
    started = time.perf_counter()
    row, document = await render_template_html(request, key, uid, body.variables, body.locale)
    options = RenderOptions(
        format=fmt_of(body.format, row.format), width_px=body.width or row.width, height_px=body.height or row.height,
        scale=body.scale or row.scale, quality=body.quality or row.quality, pdf=pdf_options(row.pdf),
    )
    result = await run_render(request, document, options, asset_root(service_of(request).storage, uid))
    return await respond(request, key, result, started)


@router.post("/image")
@emits_failures
async def render_image(body: ImageIn, request: Request, key: ApiKey = Depends(authenticate)) -> Any:
    started = time.perf_counter()
    await run_in_threadpool(check_template_source, request, body.html)
    service = service_of(request)
    try:
        html = await run_in_threadpool(lambda: service.template_engine.compile(body.html).render(body.variables))
    except RowError as exc:
        raise row_failed(exc) from exc
    options = RenderOptions(format=fmt_of(body.format, "png"), width_px=body.width, height_px=body.height,
                            scale=body.scale, quality=body.quality, selector=body.selector)
    result = await run_render(request, build_document(html, stylesheet=False, css=body.css), options)
    return await respond(request, key, result, started)


def page_options(body: PdfLayoutIn, base: PdfOptions | None, width: int, height: int) -> RenderOptions:
    base = base or PdfOptions()
    pdf = PdfOptions(
        page_size=body.page_size if body.page_size is not None else base.page_size,
        landscape=body.landscape if body.landscape is not None else base.landscape,
        margin_mm=body.margin_mm if body.margin_mm is not None else base.margin_mm,
    )
    return RenderOptions(format=OutputFormat.PDF, width_px=body.width or width, height_px=body.height or height, pdf=pdf)


async def pdf_page(request: Request, key: ApiKey, page: Any, body: PdfLayoutIn,
                   field: str) -> RenderResult:
    if (page.html is None) == (page.template_uid is None):
        raise ApiProblem(422, f"{field}: send exactly one of 'html' or 'templateUid'", code="validation_error",
                         field=field)
    if page.template_uid is not None:
        row, document = await render_template_html(request, key, page.template_uid, page.variables, None)
        options = page_options(body, pdf_options(row.pdf), row.width, row.height)
        return await run_render(request, document, options, asset_root(service_of(request).storage, row.uid))
    await run_in_threadpool(check_template_source, request, page.html, f"{field}.html" if field != "body" else "html")
    try:
        engine = service_of(request).template_engine
        html = await run_in_threadpool(lambda: engine.compile(page.html).render(page.variables))
    except RowError as exc:
        raise row_failed(exc) from exc
    options = page_options(body, None, 794, 1123)  # A4 at 96 dpi unless told otherwise
    return await run_render(request, build_document(html, stylesheet=False, css=page.css), options)


@router.post("/pdf/render")
@emits_failures
async def render_pdf(body: PdfRenderIn, request: Request, key: ApiKey = Depends(authenticate)) -> Any:
    started = time.perf_counter()
    result = await pdf_page(request, key, body, body, "body")
    return await respond(request, key, result, started)


@router.post("/pdf/multi-page")
@emits_failures
async def render_multi_page(body: MultiPageIn, request: Request, key: ApiKey = Depends(authenticate)) -> Any:
    started = time.perf_counter()
    parts = await asyncio.gather(*(pdf_page(request, key, page, body, f"pages[{i}]")
                                   for i, page in enumerate(body.pages)))
    data, pages = await asyncio.to_thread(merge_pdfs_bytes, [p.data for p in parts])
    first = parts[0]
    merged = RenderResult(data, OutputFormat.PDF, first.width_px, first.height_px, pages,
                          sum(p.render_ms for p in parts))
    return await respond(request, key, merged, started)
