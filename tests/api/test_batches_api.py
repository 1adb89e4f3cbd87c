"""Batches through the API: accept (JSON and uploads), results, cancel, retry, downloads, expiry."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import zipfile
from datetime import timedelta

import pytest
from openpyxl import Workbook
from pypdf import PdfReader
from sqlalchemy import update
from tests.api.conftest import Api, create_template, wait_for_batch
from tests.conftest import open_image

from pressrun.db.schema import items

pytestmark = pytest.mark.chromium

FAILING_HTML = "<html><body>{% if fail %}{{ missing_thing }}{% endif %}{{ title }}</body></html>"


def local(url: str) -> str:
    """Result URLs are absolute (http://pressrun.test/files/...); the test client wants the path."""
    return url.split("pressrun.test", 1)[1]


async def submit(api: Api, uid: str, body: dict, key: str | None = None) -> dict:
    response = await api.client.post(f"/templates/{uid}/batch-render", json=body, headers=api.auth(key))
    assert response.status_code == 202, response.text
    return response.json()


async def test_results_carry_files_with_exact_size_and_row_values(api: Api):
    template = await create_template(api)
    colors = ["#ff0000", "#00ff00", "#0000ff"]
    accepted = await submit(api, template["uid"], {"variableSets": [{"title": "x", "color": c} for c in colors],
                                                   "format": "png", "scale": 2})
    done = await wait_for_batch(api, accepted["batchId"])
    assert (done["status"], done["completedCount"], done["pendingCount"]) == ("completed", 3, 0)
    for result, color in zip(done["results"], colors, strict=True):
        response = await api.client.get(local(result["url"]))
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        image = open_image(response.content).convert("RGB")
        assert image.size == (400, 200) == (result["width"], result["height"])
        assert image.getpixel((300, 150)) == tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))
        assert result["bytes"] == len(response.content)


async def test_a_bad_row_fails_alone_and_retry_reruns_only_failed_items(api: Api):
    template = await create_template(api, html=FAILING_HTML)
    rows = [{"title": f"r{i}", "fail": i in (1, 3)} for i in range(5)]
    done = await wait_for_batch(api, (await submit(api, template["uid"], {"variableSets": rows}))["batchId"])
    assert done["status"] == "partial"
    assert (done["completedCount"], done["failedCount"]) == (3, 2)
    failed = [r for r in done["results"] if r["status"] == "failed"]
    assert [r["index"] for r in failed] == [1, 3]
    assert failed[0]["error"]["code"] == "missing_variable"
    assert "missing_thing" in failed[0]["error"]["message"]
    first_urls = {r["index"]: r["url"] for r in done["results"] if r["status"] == "completed"}

    # Retry re-runs only the failed items, in the same batch, with the batch's pinned template
    # version: here they fail again for the same reason, and the completed items are untouched.
    response = await api.client.post(f"/templates/batch/{done['batchId']}/retry", headers=api.auth())
    assert response.status_code == 200, response.text
    assert response.json()["retriedCount"] == 2
    again = await wait_for_batch(api, done["batchId"])
    assert (again["completedCount"], again["failedCount"], again["totalItems"]) == (3, 2, 5)
    assert {r["index"]: r["url"] for r in again["results"] if r["status"] == "completed"} == first_urls


async def test_status_filter_and_pagination(api: Api):
    template = await create_template(api, html=FAILING_HTML)
    rows = [{"title": f"r{i}", "fail": i % 4 == 0} for i in range(12)]
    batch_id = (await submit(api, template["uid"], {"variableSets": rows, "concurrency": 10}))["batchId"]
    await wait_for_batch(api, batch_id)
    page = (await api.client.get(f"/templates/batch/{batch_id}/results?offset=5&limit=4", headers=api.auth())).json()
    assert [r["index"] for r in page["results"]] == [5, 6, 7, 8]
    failed = (await api.client.get(f"/templates/batch/{batch_id}/results?status=failed", headers=api.auth())).json()
    assert [r["index"] for r in failed["results"]] == [0, 4, 8]
    bad = await api.client.get(f"/templates/batch/{batch_id}/results?status=nope", headers=api.auth())
    assert bad.status_code == 422 and "status" in bad.json()["detail"]


async def test_cancel_stops_queued_items_and_lets_in_flight_ones_finish(api: Api):
    slow = "<html><body>{{ title }}{% for i in range(20000) %}<i></i>{% endfor %}</body></html>"
    template = await create_template(api, html=slow)
    batch_id = (await submit(api, template["uid"], {"variableSets": [{"title": i} for i in range(60)],
                                                    "concurrency": 1}))["batchId"]
    while (await api.client.get(f"/templates/batch/{batch_id}/results", headers=api.auth())).json()[
        "completedCount"] < 1:
        await asyncio.sleep(0.05)
    response = await api.client.post(f"/templates/batch/{batch_id}/cancel", headers=api.auth())
    assert response.status_code == 200, response.text
    done = await wait_for_batch(api, batch_id)
    assert done["status"] == "cancelled"
    assert done["cancelledCount"] > 0
    assert done["completedCount"] + done["failedCount"] + done["cancelledCount"] == 60
    assert done["pendingCount"] == 0
    again = await api.client.post(f"/templates/batch/{batch_id}/cancel", headers=api.auth())
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert "already finished" in again.json()["detail"]


async def test_zip_download_names_files_by_pattern_and_lists_failures(api: Api):
    template = await create_template(api, html=FAILING_HTML, format="jpeg")
    rows = [{"title": "Alpha", "fail": False}, {"title": "Beta", "fail": True}, {"title": "Alpha", "fail": False}]
    batch_id = (await submit(api, template["uid"], {"variableSets": rows, "filename": "{{ title }} card",
                                                    "zip": True}))["batchId"]
    done = await wait_for_batch(api, batch_id)
    assert done["zipUrl"] == f"http://pressrun.test/templates/batch/{batch_id}/download"
    response = await api.client.get(f"/templates/batch/{batch_id}/download", headers=api.auth())
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(archive.namelist()) == ["Alpha card-2.jpg", "Alpha card.jpg", "manifest.csv"]
    assert open_image(archive.read("Alpha card.jpg")).size == (200, 100)
    manifest = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode())))
    assert [(m["index"], m["status"]) for m in manifest] == [("0", "completed"), ("1", "failed"), ("2", "completed")]
    assert manifest[1]["error_code"] == "missing_variable" and manifest[1]["file"] == ""


async def test_merged_pdf_download(api: Api):
    template = await create_template(api, format="pdf", pdf={"pageSize": "a5"})
    batch_id = (await submit(api, template["uid"], {"variableSets": [{"title": f"page {i}"} for i in range(4)]}))[
        "batchId"]
    await wait_for_batch(api, batch_id)
    response = await api.client.get(f"/templates/batch/{batch_id}/download?merge=pdf", headers=api.auth())
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    reader = PdfReader(io.BytesIO(response.content))
    assert [page.extract_text().strip() for page in reader.pages] == [f"page {i}" for i in range(4)]
    assert round(float(reader.pages[0].mediabox.width)) == 420  # A5 portrait, in points
    png_batch = (await submit(api, (await create_template(api))["uid"], {"variableSets": [{"title": "x"}]}))["batchId"]
    await wait_for_batch(api, png_batch)
    refused = await api.client.get(f"/templates/batch/{png_batch}/download?merge=pdf", headers=api.auth())
    assert refused.status_code == 409 and "PDF batch" in refused.json()["detail"]


async def test_csv_upload_applies_column_types_and_reports_bad_cells(api: Api):
    html = "<html><body>{{ (price * 2) | number(2) }}</body></html>"
    template = await create_template(api, html=html, format="pdf", columnTypes={"price": "number"})
    data = "price\n1.5\nabc\n10\n"
    response = await api.client.post(f"/templates/{template['uid']}/batch-render", content=data.encode(),
                                     headers={**api.auth(), "Content-Type": "text/csv"})
    assert response.status_code == 202, response.text
    done = await wait_for_batch(api, response.json()["batchId"])
    assert [r["status"] for r in done["results"]] == ["completed", "failed", "completed"]
    assert done["results"][1]["error"]["code"] == "invalid_value"
    assert "abc" in done["results"][1]["error"]["message"]
    # The details errors.jsonl has in the CLI: which column, which value, what was expected.
    assert {k: done["results"][1]["error"][k] for k in ("column", "value", "expected")} == {
        "column": "price", "value": "abc", "expected": "number"}
    pdf = await api.client.get(local(done["results"][2]["url"]))
    assert PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text().strip() == "20.00"


async def test_multipart_xlsx_and_raw_jsonl_uploads(api: Api):
    template = await create_template(api)
    book = Workbook()
    sheet = book.active
    sheet.append(["title", "color"])
    for i in range(3):
        sheet.append([f"x{i}", "#00ff00"])
    buffer = io.BytesIO()
    book.save(buffer)
    response = await api.client.post(
        f"/templates/{template['uid']}/batch-render",
        files={"file": ("rows.xlsx", buffer.getvalue(),
                        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")},
        data={"format": "jpeg", "concurrency": "3"},
        headers=api.auth(),
    )
    assert response.status_code == 202, response.text
    done = await wait_for_batch(api, response.json()["batchId"])
    assert done["completedCount"] == 3 and done["format"] == "jpeg"

    jsonl = "\n".join(json.dumps({"title": f"j{i}"}) for i in range(4)) + "\n"
    response = await api.client.post(f"/templates/{template['uid']}/batch-render?format=webp", content=jsonl.encode(),
                                     headers={**api.auth(), "Content-Type": "application/x-ndjson"})
    assert response.status_code == 202, response.text
    done = await wait_for_batch(api, response.json()["batchId"])
    assert (done["completedCount"], done["format"]) == (4, "webp")


async def test_batches_are_listed_newest_first_per_workspace(api: Api):
    template = await create_template(api, key=api.key_b)
    first = (await submit(api, template["uid"], {"variableSets": [{"title": "1"}]}, key=api.key_b))["batchId"]
    second = (await submit(api, template["uid"], {"variableSets": [{"title": "2"}]}, key=api.key_b))["batchId"]
    listed = (await api.client.get("/templates/batch", headers=api.auth(api.key_b))).json()
    ids = [b["batchId"] for b in listed["batches"]]
    assert ids.index(second) < ids.index(first)
    mine = (await api.client.get("/templates/batch?limit=100", headers=api.auth())).json()
    assert first not in [b["batchId"] for b in mine["batches"]]
    for path in (f"/templates/batch/{first}/results", f"/templates/batch/{first}/download"):
        assert (await api.client.get(path, headers=api.auth())).status_code == 404
    assert (await api.client.post(f"/templates/batch/{first}/cancel", headers=api.auth())).status_code == 404


async def test_sweeper_deletes_expired_outputs_and_marks_them(api: Api):
    template = await create_template(api)
    batch_id = (await submit(api, template["uid"], {"variableSets": [{"title": "old"}, {"title": "new"}]}))["batchId"]
    done = await wait_for_batch(api, batch_id)
    old = done["results"][0]
    retention = timedelta(seconds=api.service.settings.api.retention_s)
    with api.service.db.begin() as conn:  # age the first output past the retention period
        row = conn.execute(items.select().where(items.c.output_key.like(f"batches/{batch_id}/0.%"))).one()
        conn.execute(update(items).where(items.c.id == row.id).values(finished_at=row.finished_at - retention * 2))
    assert await asyncio.to_thread(api.service.sweep) >= 1
    assert not api.service.storage.exists(row.output_key)
    after = await wait_for_batch(api, batch_id)
    assert after["results"][0]["status"] == "expired" and after["results"][0]["url"] is None
    assert after["results"][1]["status"] == "completed"
    assert (await api.client.get(local(old["url"]))).status_code in (404, 410)
    archive = zipfile.ZipFile(io.BytesIO((await api.client.get(f"/templates/batch/{batch_id}/download",
                                                               headers=api.auth())).content))
    manifest = archive.read("manifest.csv").decode()
    assert "0,,expired" in manifest


async def test_parallel_submissions_cannot_pass_the_open_batch_limit(api: Api):
    from pressrun.db import repo

    key, _ = repo.create_key(api.service.db, name="parallel", plan="default")  # 5 unfinished batches allowed
    limit = api.service.plan("default").max_concurrent_batches
    template = await create_template(api, key=key)
    body = {"variableSets": [{"title": str(i)} for i in range(40)], "concurrency": 1}
    responses = await asyncio.gather(*(
        api.client.post(f"/templates/{template['uid']}/batch-render", json=body, headers=api.auth(key))
        for _ in range(limit + 5)
    ))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [202] * limit + [429] * 5, statuses
    for response in responses:
        if response.status_code == 202:
            await api.client.post(f"/templates/batch/{response.json()['batchId']}/cancel", headers=api.auth(key))


async def test_a_batch_whose_images_its_format_cannot_hold_is_refused_when_submitted(api: Api):
    # WebP holds at most 16383 px a side: 5000 px × scale 4 would have failed every item, one by one.
    template = await create_template(api)
    listing = await api.client.get("/templates/batch?limit=100", headers=api.auth())
    assert listing.status_code == 200
    listed_before = listing.json()
    response = await api.client.post(
        f"/templates/{template['uid']}/batch-render",
        json={"variableSets": [{"title": "x", "color": "#000000"}], "format": "webp", "width": 5000, "scale": 4},
        headers=api.auth(),
    )
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["code"] == "usage_error" and problem["field"] == "width"
    assert "16383" in problem["detail"] and "20000" in problem["detail"]
    assert (await api.client.get("/templates/batch?limit=100", headers=api.auth())).json() == listed_before
