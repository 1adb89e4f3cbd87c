"""Synchronous renders: a stored template with variables, raw HTML to an image, HTML to a PDF,
and several pages into one PDF. Each answers JSON with a signed URL, or the file itself when the
client asks for it in ``Accept`` (``image/*`` or ``application/pdf``).

Every page goes through the item pipeline (pressrun.pipeline) with options from the one resolver
(pressrun.options), as batch items and the CLI's rows do; a failed row answers 422 with its code."""

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
from pressrun.api.deps import compile_source, file_url, service_of, template_or_404
from pressrun.api.problems import ApiProblem
from pressrun.api.schemas import ImageIn, MultiPageIn, PdfLayoutIn, PdfRenderIn, TemplateRenderIn
from pressrun.background import gather_or_cancel
from pressrun.db import repo
from pressrun.db.repo import ApiKey
from pressrun.errors import RowError
from pressrun.models import OutputFormat, RenderResult
from pressrun.options import A4_AT_96_DPI_PX, Overrides, TemplateDefaults, resolve_locale, resolve_options
from pressrun.pipeline import Failed, ItemPipeline
from pressrun.rendering.pdf import merge_pdfs_bytes
from pressrun.templating.prepared import PreparedTemplate

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
    await service_of(request).single_render_done(key.workspace_id, {"endpoint": request.url.path, **data},
                                                 failed=failed)


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


def failed_problem(failed: Failed) -> ApiProblem:
    """A render that fails because of its input is the client's to fix: 422 with the row error's code
    (a bad option keeps its own status; a bug is a 500). Only row errors send render.failed."""
    error = failed.error
    status = 422 if isinstance(error, RowError) else error.http_status
    problem = ApiProblem(status, error.message, code=error.code, **{k: v for k, v in error.details.items()
                                                                 if isinstance(v, str | int | float | bool)})
    problem.row_error = isinstance(error, RowError)  # type: ignore[attr-defined]
    return problem


async def run_pipeline(pipeline: ItemPipeline, variables: dict[str, Any]) -> RenderResult:
    """The row through the item pipeline; a failed row is raised as its problem. An error that stops the
    pipeline (Chromium unavailable) is raised as it is: the PressrunError handler answers it (503)."""
    outcome = await pipeline.run(variables)
    if isinstance(outcome, Failed):
        raise failed_problem(outcome)
    return outcome.result


async def render_stored(request: Request, key: ApiKey, uid: str, variables: dict[str, Any],
                        overrides: Overrides) -> RenderResult:
    """A stored template (its current version) with ``overrides`` over its own settings."""
    row = await template_or_404(request, key.workspace_id, uid)
    service = service_of(request)
    template = await run_in_threadpool(service.templates.get, row.id, row.version)
    options = resolve_options(template.defaults, overrides)
    pipeline = ItemPipeline(template, options, service.renderer, locale=resolve_locale(template.defaults, overrides),
                            count_pages=True)
    return await run_pipeline(pipeline, variables)


async def render_source(request: Request, html: str, css: str, variables: dict[str, Any], field: str,
                        defaults: TemplateDefaults, overrides: Overrides) -> RenderResult:
    """The raw HTML of a request (it has no assets of its own)."""
    service = service_of(request)
    compiled = await run_in_threadpool(compile_source, request, html, field)
    options = resolve_options(defaults, overrides)
    pipeline = ItemPipeline(PreparedTemplate(compiled, defaults, css=css), options, service.renderer,
                            count_pages=True)
    return await run_pipeline(pipeline, variables)


@router.post("/templates/{uid}/render")
@emits_failures
async def render_template(uid: str, body: TemplateRenderIn, request: Request,
                          key: ApiKey = Depends(authenticate)) -> Any:
    started = time.perf_counter()
    overrides = Overrides(format=body.format, width_px=body.width, height_px=body.height, quality=body.quality,
                          scale=body.scale, locale=body.locale)
    result = await render_stored(request, key, uid, body.variables, overrides)
    return await respond(request, key, result, started)


@router.post("/image")
@emits_failures
async def render_image(body: ImageIn, request: Request, key: ApiKey = Depends(authenticate)) -> Any:
    started = time.perf_counter()
    overrides = Overrides(format=body.format, width_px=body.width, height_px=body.height, quality=body.quality,
                          scale=body.scale, selector=body.selector)
    result = await render_source(request, body.html, body.css, body.variables, "html", TemplateDefaults(), overrides)
    return await respond(request, key, result, started)


async def pdf_page(request: Request, key: ApiKey, page: Any, body: PdfLayoutIn, field: str) -> RenderResult:
    if (page.html is None) == (page.template_uid is None):
        raise ApiProblem(422, f"{field}: send exactly one of 'html' or 'templateUid'", code="validation_error",
                         field=field)
    overrides = Overrides(format=OutputFormat.PDF, width_px=body.width, height_px=body.height,
                          page_size=body.page_size, landscape=body.landscape, margin_mm=body.margin_mm)
    if page.template_uid is not None:
        return await render_stored(request, key, page.template_uid, page.variables, overrides)
    html_field = f"{field}.html" if field != "body" else "html"
    return await render_source(request, page.html, page.css, page.variables, html_field, PDF_PAGE_DEFAULTS,
                               overrides)


# A page of raw HTML is A4 at 96 px per inch unless the request says otherwise.
PDF_PAGE_DEFAULTS = TemplateDefaults(width_px=A4_AT_96_DPI_PX[0], height_px=A4_AT_96_DPI_PX[1],
                                     format=OutputFormat.PDF)


@router.post("/pdf/render")
@emits_failures
async def render_pdf(body: PdfRenderIn, request: Request, key: ApiKey = Depends(authenticate)) -> Any:
    started = time.perf_counter()
    result = await pdf_page(request, key, body, body, "body")
    return await respond(request, key, result, started)


async def render_pages(request: Request, key: ApiKey, body: MultiPageIn) -> list[RenderResult]:
    """The pages, a few at a time (as many as the renderer has pages: one request cannot fill the
    template processes and the browser with 500 pages while other tenants wait), and the first page
    that fails cancels the others: its problem is the answer, the rest is wasted work."""
    slots = asyncio.Semaphore(max(1, service_of(request).renderer.concurrency))

    async def one(index: int, page: Any) -> RenderResult:
        async with slots:
            return await pdf_page(request, key, page, body, f"pages[{index}]")

    return await gather_or_cancel([asyncio.create_task(one(index, page)) for index, page in enumerate(body.pages)])


@router.post("/pdf/multi-page")
@emits_failures
async def render_multi_page(body: MultiPageIn, request: Request, key: ApiKey = Depends(authenticate)) -> Any:
    started = time.perf_counter()
    parts = await render_pages(request, key, body)
    data, pages = await asyncio.to_thread(merge_pdfs_bytes, [p.data for p in parts])
    first = parts[0]
    merged = RenderResult(data, OutputFormat.PDF, first.width_px, first.height_px, pages,
                          sum(p.render_ms for p in parts))
    return await respond(request, key, merged, started)
