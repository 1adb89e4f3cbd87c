"""The API, the dispatcher and webhooks on their seams, without Chromium: FakeRenderer, MemoryStorage,
a mock webhook transport (tests/api/conftest.py ``fake_api``). The same service, routes, pipeline and
SQL as in production; only the browser, the disk and the network are stand-ins. The real-Chromium
tests beside these (test_batches_api.py, test_renders_api.py, test_webhooks.py) keep covering the parts
these cannot."""

from __future__ import annotations

import errno
import io
import json
import os
import zipfile

from pypdf import PdfReader
from tests.api.conftest import FakeApi, assert_problem, create_template
from tests.conftest import open_image

from pressrun.db import repo
from pressrun.rendering.fake import colour_for
from pressrun.webhooks import verify


async def accept(api: FakeApi, uid: str, body: dict) -> dict:
    response = await api.client.post(f"/templates/{uid}/batch-render", json=body, headers=api.auth())
    assert response.status_code == 202, response.text
    return response.json()


async def results(api: FakeApi, batch_id: str) -> dict:
    response = await api.client.get(f"/templates/batch/{batch_id}/results", headers=api.auth())
    assert response.status_code == 200, response.text
    return response.json()


async def test_keys_and_workspaces_are_checked_before_anything_else(fake_api: FakeApi):
    assert_problem(await fake_api.client.get("/templates"), 401, "unauthorized")
    template = await create_template(fake_api)
    foreign = await fake_api.client.get(f"/templates/{template['uid']}", headers=fake_api.auth(fake_api.key_b))
    assert_problem(foreign, 404, "template_not_found")
    render = await fake_api.client.post(f"/templates/{template['uid']}/render", json={},
                                        headers=fake_api.auth(fake_api.key_b))
    assert_problem(render, 404, "template_not_found")
    assert fake_api.renderer.calls == []


async def test_a_batch_renders_every_row_through_the_pipeline_with_the_options_it_was_accepted_with(fake_api: FakeApi):
    template = await create_template(fake_api, html="<p>{{ title }}</p>", format="pdf", pdf={"pageSize": "a4"})
    accepted = await accept(fake_api, template["uid"], {"variableSets": [{"title": "one"}, {"title": "two & co"}],
                                                        "width": 400, "height": 300, "filename": "{{ title }}"})
    # The template changes after acceptance: the batch keeps its pinned version and options.
    await fake_api.client.put(f"/templates/{template['uid']}", json={"width": 999, "pdf": {"pageSize": "a3"}},
                              headers=fake_api.auth())
    assert await fake_api.drain() == 2

    done = await results(fake_api, accepted["batchId"])
    assert done["status"] == "completed" and done["completedCount"] == 2
    documents = sorted(call.html for call in fake_api.renderer.calls)
    assert "<p>one</p>" in documents[0] and "<p>two &amp; co</p>" in documents[1]
    for call in fake_api.renderer.calls:
        assert (call.options.width_px, call.options.height_px, call.options.pdf.page_size) == (400, 300, None)
    file = await fake_api.client.get(done["results"][0]["url"].removeprefix("http://pressrun.test"))
    page = PdfReader(io.BytesIO(file.content)).pages[0]
    assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == (300, 225)
    archive = await fake_api.client.get(f"/templates/batch/{accepted['batchId']}/download", headers=fake_api.auth())
    assert archive.status_code == 200
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
        # The file-name pattern is unescaped text, as in the CLI.
        assert sorted(zipped.namelist()) == ["manifest.csv", "one.pdf", "two & co.pdf"]


async def test_row_errors_fail_their_items_with_code_message_and_details(fake_api: FakeApi):
    html = "<div data-fake-error='{{ error | default(\"\") }}'>{{ (price * 2) | number }}</div>"
    template = await create_template(fake_api, html=html, columnTypes={"price": "number"})
    rows = [{"price": "1"}, {"error": "render_timeout", "price": "2"}, {"price": "abc"}, {}]
    accepted = await accept(fake_api, template["uid"], {"variableSets": rows})
    await fake_api.drain()

    done = await results(fake_api, accepted["batchId"])
    assert done["status"] == "partial"
    assert [r["status"] for r in done["results"]] == ["completed", "failed", "failed", "failed"]
    errors = [r["error"] for r in done["results"]]
    assert errors[0] is None
    assert errors[1]["code"] == "render_timeout"
    assert {k: errors[2][k] for k in ("code", "column", "value", "expected")} == {
        "code": "invalid_value", "column": "price", "value": "abc", "expected": "number"}
    assert errors[3]["code"] == "missing_variable" and errors[3]["variable"] == "price"
    # Retried, the failed items render again with fresh errors; the details do not linger.
    retry = await fake_api.client.post(f"/templates/batch/{accepted['batchId']}/retry", headers=fake_api.auth())
    assert retry.json()["retriedCount"] == 3
    pending = await results(fake_api, accepted["batchId"])
    assert [r["error"] for r in pending["results"][1:]] == [None, None, None]


async def test_chromium_unavailable_puts_items_back_in_the_queue_and_nothing_is_lost(fake_api: FakeApi):
    template = await create_template(fake_api)
    accepted = await accept(fake_api, template["uid"], {"variableSets": [{"title": str(i)} for i in range(5)]})
    fake_api.renderer.unavailable = True
    await fake_api.drain()

    stalled = await results(fake_api, accepted["batchId"])
    assert stalled["failedCount"] == 0 and stalled["pendingCount"] == 5, stalled
    assert {r["status"] for r in stalled["results"]} == {"queued"}

    fake_api.renderer.unavailable = False
    await fake_api.drain()
    done = await results(fake_api, accepted["batchId"])
    assert done["status"] == "completed" and done["completedCount"] == 5


async def test_a_full_disk_puts_items_back_instead_of_failing_them(fake_api: FakeApi, monkeypatch):
    template = await create_template(fake_api)
    accepted = await accept(fake_api, template["uid"], {"variableSets": [{"title": str(i)} for i in range(4)]})
    put = fake_api.storage.put
    refusals = []

    def full(key: str, data: bytes) -> None:
        if len(refusals) < 2:
            refusals.append(key)
            raise OSError(errno.ENOSPC, "No space left on device")
        put(key, data)

    monkeypatch.setattr(fake_api.storage, "put", full)
    await fake_api.drain()
    first = await results(fake_api, accepted["batchId"])
    assert first["failedCount"] == 0 and refusals

    while (await results(fake_api, accepted["batchId"]))["pendingCount"]:
        assert await fake_api.drain() > 0
    done = await results(fake_api, accepted["batchId"])
    assert done["status"] == "completed" and done["completedCount"] == 4
    for item in done["results"]:
        assert fake_api.storage.exists(f"batches/{accepted['batchId']}/{item['index']}.png")


async def test_single_renders_go_through_the_same_pipeline_and_policy(fake_api: FakeApi):
    template = await create_template(fake_api, html="<p data-fake-error='{{ error | default(\"\") }}'>{{ title }}</p>")
    ok = await fake_api.client.post(f"/templates/{template['uid']}/render",
                                    json={"variables": {"title": "hi"}, "width": 64, "height": 32},
                                    headers={**fake_api.auth(), "Accept": "image/png"})
    assert ok.status_code == 200, ok.text
    image = open_image(ok.content)
    assert image.size == (64, 32)
    assert image.convert("RGB").getpixel((5, 5)) == colour_for(fake_api.renderer.calls[-1].html)

    failed = await fake_api.client.post(f"/templates/{template['uid']}/render",
                                        json={"variables": {"title": "hi", "error": "blocked_url"}},
                                        headers=fake_api.auth())
    assert_problem(failed, 422, "blocked_url")
    missing = await fake_api.client.post(f"/templates/{template['uid']}/render",
                                         json={"variables": {}}, headers=fake_api.auth())
    body = assert_problem(missing, 422, "missing_variable")
    assert body["variable"] == "title"

    fake_api.renderer.unavailable = True
    gone = await fake_api.client.post(f"/templates/{template['uid']}/render",
                                      json={"variables": {"title": "hi"}}, headers=fake_api.auth())
    assert_problem(gone, 503, "browser_unavailable")


async def test_batch_completed_webhook_carries_the_results_the_api_shows(fake_api: FakeApi):
    created = await fake_api.client.post("/webhook-subscriptions", json={"url": "http://127.0.0.1:9/hooks", "events": ["batch.completed"]},
                                         headers=fake_api.auth())
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    template = await create_template(fake_api, html="<p data-fake-error='{{ e | default(\"\") }}'>x</p>")
    accepted = await accept(fake_api, template["uid"], {"variableSets": [{}, {"e": "render_crashed"}]})
    await fake_api.drain()
    assert await fake_api.service.webhooks.deliver_due() == 1

    [request] = fake_api.webhook_requests
    verify(request.content, request.headers["X-Pressrun-Signature"], secret)
    payload = json.loads(request.content)["data"]
    shown = await results(fake_api, accepted["batchId"])
    assert payload["status"] == shown["status"] == "partial"
    for field in ("batchId", "totalItems", "completedCount", "failedCount", "cancelledCount"):
        assert payload[field] == shown[field], field
    assert [(r["index"], r["status"], r["error"]) for r in payload["results"]] == [
        (r["index"], r["status"], r["error"]) for r in shown["results"]]


async def test_a_batch_cancelled_before_it_starts_renders_nothing(fake_api: FakeApi):
    template = await create_template(fake_api)
    accepted = await accept(fake_api, template["uid"], {"variableSets": [{"title": str(i)} for i in range(6)]})
    cancelled = await fake_api.client.post(f"/templates/batch/{accepted['batchId']}/cancel", headers=fake_api.auth())
    assert cancelled.status_code == 200
    assert await fake_api.drain() == 0
    done = await results(fake_api, accepted["batchId"])
    assert done["status"] == "cancelled" and done["cancelledCount"] == 6
    assert fake_api.renderer.calls == []
    assert repo.item_counts(fake_api.service.db, repo.get_batch(fake_api.service.db, None, accepted["batchId"]).id) == {
        "cancelled": 6}


async def test_a_stored_templates_assets_are_where_its_renders_load_from(fake_api: FakeApi):
    template = await create_template(fake_api, html="<img src='assets/logo.png'>{{ title }}")
    uploaded = await fake_api.client.post(f"/templates/{template['uid']}/assets",
                                          files={"file": ("logo.png", b"\x89PNG not really", "image/png")},
                                          headers=fake_api.auth())
    assert uploaded.status_code == 201, uploaded.text
    accepted = await accept(fake_api, template["uid"], {"variableSets": [{"title": "x"}]})
    await fake_api.drain()
    assert (await results(fake_api, accepted["batchId"]))["status"] == "completed"
    [call] = fake_api.renderer.calls
    assert (call.asset_root / "assets" / "logo.png").read_bytes() == b"\x89PNG not really"
    # The folder is this template's own (templates/<uid>), not a shared one.
    assert template["uid"] in str(call.asset_root)


async def test_a_restart_releases_idempotency_claims_a_crash_left(fake_api: FakeApi):
    """kill -9 mid-request left the key claimed: retries heard 409 idempotency_in_progress for 24 h."""
    from datetime import timedelta

    from pressrun.rendering.fake import FakeRenderer
    from pressrun.service import Service

    db = fake_api.service.db
    assert repo.idempotency_begin(db, repo.hash_key(fake_api.key_a), "order-7", "hash", timedelta(hours=1)) is None
    restarted = Service(fake_api.service.settings, db=db, storage=fake_api.storage, renderer=FakeRenderer())
    await restarted.start(dispatch=False, deliver=False)
    await restarted.stop()
    assert repo.idempotency_begin(db, repo.hash_key(fake_api.key_a), "order-7", "hash", timedelta(hours=1)) is None


async def test_ready_says_what_failed_but_not_why_to_anyone_without_a_key(fake_api: FakeApi, monkeypatch, caplog):
    def broken() -> None:
        raise OSError(13, "Permission denied: '/srv/secret/pressrun/files/.probe'")

    monkeypatch.setattr(fake_api.storage, "check", broken)
    fake_api.renderer.unavailable = True
    response = await fake_api.client.get("/ready")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "storage": "failed (see the server log)",
                                         "browser": "failed: Chromium is not running"}
    assert "/srv/secret" not in response.text and "/srv/secret" in caplog.text


def refuse_one(api: FakeApi, monkeypatch, key_suffix: str, code: int) -> None:
    put = api.storage.put

    def refusing(key: str, data: bytes) -> None:
        if key.endswith(key_suffix):
            raise OSError(code, os.strerror(code))
        put(key, data)

    monkeypatch.setattr(api.storage, "put", refusing)


async def test_a_file_the_storage_refuses_alone_fails_its_item_only(fake_api: FakeApi, monkeypatch):
    """Found in review: every OSError was taken for a full disk, so one file too large for the file
    system came back first in the queue on every round and paused dispatch for every tenant."""
    template = await create_template(fake_api)
    accepted = await accept(fake_api, template["uid"], {"variableSets": [{"title": str(i)} for i in range(4)]})
    refuse_one(fake_api, monkeypatch, "/1.png", errno.EFBIG)
    await fake_api.drain()
    done = await results(fake_api, accepted["batchId"])
    assert done["status"] == "partial"
    assert [r["status"] for r in done["results"]] == ["completed", "failed", "completed", "completed"]
    assert done["results"][1]["error"]["code"] == "output_refused"


async def test_a_full_disk_for_one_item_while_others_fit_fails_it_after_a_few_tries(fake_api: FakeApi, monkeypatch):
    template = await create_template(fake_api)
    accepted = await accept(fake_api, template["uid"], {"variableSets": [{"title": str(i)} for i in range(8)]})
    refuse_one(fake_api, monkeypatch, "/0.png", errno.ENOSPC)  # a huge file: no room for it, room for others
    for _ in range(12):  # bounded: each drain is a claim round after a pause
        if not (await results(fake_api, accepted["batchId"]))["pendingCount"]:
            break
        await fake_api.drain()
    done = await results(fake_api, accepted["batchId"])
    assert done["status"] == "partial" and done["completedCount"] == 7
    assert done["results"][0]["error"]["code"] == "output_error"


async def test_a_chunked_json_body_past_the_limit_is_413_not_malformed_json(fake_api: FakeApi, monkeypatch):
    import httpx

    from pressrun.api import create_app

    monkeypatch.setattr(fake_api.service.settings.api, "max_body_mb", 1)
    app = create_app(fake_api.service, manage_service=False)

    async def chunks():  # no Content-Length: only counting while reading can catch it
        yield b'{"name": "t", "html": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pressrun.test") as client:
        response = await client.post("/templates", content=chunks(),
                                     headers={**fake_api.auth(), "Content-Type": "application/json"})
    body = assert_problem(response, 413, "body_too_large")
    assert body["limitBytes"] == 2**20 and "PRESSRUN_API__MAX_BODY_MB" in body["detail"]


async def test_a_jsonl_upload_with_an_unreadable_line_fails_that_item_only(fake_api: FakeApi):
    template = await create_template(fake_api)
    data = '{"title": "a"}\n{"title": ' + "9" * 5000 + '}\n{"title": "c"}\n'
    response = await fake_api.client.post(f"/templates/{template['uid']}/batch-render", content=data.encode(),
                                          headers={**fake_api.auth(), "Content-Type": "application/x-ndjson"})
    assert response.status_code == 202, response.text  # was a 500, or "no data rows" in a later row
    await fake_api.drain()
    done = await results(fake_api, response.json()["batchId"])
    assert [r["status"] for r in done["results"]] == ["completed", "failed", "completed"]
    assert done["results"][1]["error"]["code"] == "invalid_value" and done["results"][1]["error"]["line"] == 2


async def test_a_failing_page_of_a_multi_page_pdf_stops_the_others(fake_api: FakeApi):
    """20 pages each running to the time limit kept running after the first failed (asyncio.gather), and
    another tenant's /image waited 19 s. Pages run a few at a time and the first failure cancels the rest."""
    fake_api.renderer.delay_s = 0.05
    pages = [{"html": "<p data-fake-error='render_timeout'>0</p>"}] + [{"html": f"<p>{i}</p>"} for i in range(1, 20)]
    response = await fake_api.client.post("/pdf/multi-page", json={"pages": pages}, headers=fake_api.auth())
    assert_problem(response, 422, "render_timeout")
    assert fake_api.renderer.peak_in_flight <= fake_api.renderer.concurrency
    assert len(fake_api.renderer.calls) <= 2 * fake_api.renderer.concurrency  # not 20


async def test_a_forged_host_header_cannot_point_signed_links_elsewhere(fake_api: FakeApi):
    template = await create_template(fake_api)
    links = {}
    for host in ("evil.example", "127.0.0.1:9999", "pressrun.test"):
        response = await fake_api.client.post(f"/templates/{template['uid']}/render", json={"variables": {"title": "x"}},
                                              headers={**fake_api.auth(), "Host": host})
        assert response.status_code == 200, response.text
        links[host] = response.json()["url"]
    assert links["evil.example"].startswith("http://127.0.0.1:8000/files/")  # the server's own address
    assert links["127.0.0.1:9999"].startswith("http://127.0.0.1:9999/files/")  # api.host: as the client used it
    assert links["pressrun.test"].startswith("http://pressrun.test/files/")  # in api.allowed_hosts


async def test_a_body_is_not_read_before_its_key_is_checked(fake_api: FakeApi):
    """An 89 MB JSON body without a key took the server to 2.4 GB before the 401."""
    pulled = []

    async def body():
        for _ in range(1000):  # 64 MiB if anyone read it all
            pulled.append(1)
            yield b"[" * 65536

    for headers in ({}, {"Authorization": "Bearer pr_not-a-key"}):
        response = await fake_api.client.post("/templates", content=body(),
                                               headers={**headers, "Content-Type": "application/json"})
        assert_problem(response, 401, "unauthorized")
    assert len(pulled) <= 2  # what the transport hands over before the app asks: not the body


async def test_a_request_checked_before_its_body_counts_once_against_the_rate_limit(fake_api: FakeApi):
    for remaining in ("4", "3"):
        response = await fake_api.client.post("/templates", json={"name": "t", "html": "<p>x</p>"},
                                               headers=fake_api.auth(fake_api.key_tiny))
        assert response.status_code == 201, response.text
        assert response.headers["X-RateLimit-Remaining"] == remaining


async def test_json_bodies_have_their_own_smaller_limit(fake_api: FakeApi, monkeypatch):
    import httpx

    from pressrun.api import create_app

    monkeypatch.setattr(fake_api.service.settings.api, "max_json_mb", 1)
    app = create_app(fake_api.service, manage_service=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pressrun.test") as client:
        big = {"name": "t", "html": "x" * (2 * 2**20)}
        response = await client.post("/templates", json=big, headers=fake_api.auth())
        assert_problem(response, 413, "body_too_large")
        # An upload of the same size is within api.max_body_mb.
        template = await create_template(fake_api)
        csv_body = "title\n" + "\n".join("y" * 100 for _ in range(21_000))
        upload = await client.post(f"/templates/{template['uid']}/batch-render", content=csv_body.encode(),
                                   headers={**fake_api.auth(), "Content-Type": "text/csv"})
        assert upload.status_code == 202, upload.text[:300]


async def test_an_xlsx_zip_bomb_upload_is_a_422_before_it_is_parsed(fake_api: FakeApi):
    from openpyxl import Workbook

    plain = io.BytesIO()
    book = Workbook()
    book.active.append(["title"])
    book.active.append(["x"])
    book.save(plain)
    bomb = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(plain.getvalue())) as source, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        for member in source.infolist():
            out.writestr(member, source.read(member))
        out.writestr("xl/sharedStrings2.xml", b" " * (30 * 2**20))
    template = await create_template(fake_api)
    response = await fake_api.client.post(f"/templates/{template['uid']}/batch-render", headers=fake_api.auth(),
                                          files={"file": ("rows.xlsx", bomb.getvalue())})
    body = assert_problem(response, 422, "data_error")
    assert "zip bomb" in body["detail"] and "the uploaded file" in body["detail"]


async def test_items_a_crash_left_rendering_are_rendered_after_a_restart_within_seconds(fake_api: FakeApi):
    """kill -9 mid-batch leaves items 'rendering'; the next start queues them again (the real-process
    test of this waits on a live server; this one needs no browser and no timeout to pass)."""
    import asyncio
    import time

    from pressrun.rendering.fake import FakeRenderer
    from pressrun.service import Service

    template = await create_template(fake_api)
    accepted = await accept(fake_api, template["uid"], {"variableSets": [{"title": str(i)} for i in range(6)]})
    db = fake_api.service.db
    batch = repo.get_batch(db, None, accepted["batchId"])
    assert len(repo.claim_items(db, batch.id, 4)) == 4  # claimed, then the process died

    restarted = Service(fake_api.service.settings, db=db, storage=fake_api.storage, renderer=FakeRenderer())
    await restarted.start(deliver=False)  # its dispatcher runs, as after a real start
    try:
        deadline = time.monotonic() + 10
        while (await results(fake_api, accepted["batchId"]))["status"] != "completed":
            assert time.monotonic() < deadline, "items left rendering were not rendered after the restart"
            await asyncio.sleep(0.05)
    finally:
        await restarted.stop()
    done = await results(fake_api, accepted["batchId"])
    assert done["completedCount"] == 6
    assert len(restarted.renderer.calls) == 6  # each item rendered once, by the restarted service
