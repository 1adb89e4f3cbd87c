"""/templates through the HTTP API: create, list, read, update (versions), delete, variables, assets,
validation problems, workspace isolation, and a running batch keeping its pinned version."""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image
from tests.api.conftest import Api, assert_problem, create_template, wait_for_batch
from tests.conftest import open_image

from pressrun.db import repo

pytestmark = pytest.mark.chromium

# --- helpers ------------------------------------------------------------------------------------


def fresh_key(api: Api, name: str) -> str:
    """A key in a workspace of its own, so counts are not disturbed by other tests' templates."""
    key, _ = repo.create_key(api.service.db, name=name, plan="default")
    return key


async def fetch(api: Api, url: str) -> httpx.Response:
    """GET an absolute result URL (http://pressrun.test/files/...) through the in-process client."""
    parts = urlsplit(url)
    assert parts.scheme == "http" and parts.netloc == "pressrun.test", url
    response = await api.client.get(f"{parts.path}?{parts.query}")
    assert response.status_code == 200, response.text
    return response


def fill(color: str, inner: str = "") -> str:
    """A template that paints the whole viewport one colour."""
    return f"<div style='position:fixed;inset:0;background:{color}'>{inner}</div>"


def png_bytes(color: tuple[int, int, int], size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def center_pixel(data: bytes) -> tuple[int, int, int]:
    image = open_image(data).convert("RGB")
    return image.getpixel((image.width // 2, image.height // 2))


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 6) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


async def render_png(api: Api, uid: str, variables: dict | None = None, key: str | None = None) -> bytes:
    response = await api.client.post(f"/templates/{uid}/render", json={"variables": variables or {}},
                                     headers={**api.auth(key), "Accept": "image/png"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return response.content




def error_for(body: dict, field: str) -> dict:
    matches = [e for e in body.get("errors", []) if e["field"] == field]
    assert matches, f"no error for {field!r} in {body}"
    return matches[0]


FULL_TEMPLATE = {
    "name": "invoice",
    "html": "<p>{{ customer.name }} owes {{ total | currency('EUR') }}</p>",
    "css": "p { color: #123456; }",
    "width": 640,
    "height": 480,
    "format": "pdf",
    "quality": 70,
    "scale": 2,
    "locale": "de_DE",
    "sampleData": {"customer": {"name": "Ada"}, "total": 12.5},
    "columnTypes": {"total": "number"},
    "pdf": {"pageSize": "a4", "landscape": True, "marginMm": 12.5},
}


# --- create and read ----------------------------------------------------------------------------


async def test_create_returns_camel_case_template_with_version_1(api: Api):
    response = await api.client.post("/templates", json=FULL_TEMPLATE, headers=api.auth())
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["uid"].startswith("tpl")
    assert body["version"] == 1
    assert body["name"] == "invoice"
    assert body["html"] == FULL_TEMPLATE["html"]
    assert body["css"] == "p { color: #123456; }"
    assert (body["width"], body["height"], body["format"]) == (640, 480, "pdf")
    assert body["quality"] == 70 and body["scale"] == 2
    assert body["locale"] == "de_DE"
    assert body["sampleData"] == {"customer": {"name": "Ada"}, "total": 12.5}
    assert body["columnTypes"] == {"total": "number"}
    assert body["pdf"] == {"pageSize": "a4", "landscape": True, "marginMm": 12.5}
    assert body["assets"] == []
    assert "createdAt" in body and "updatedAt" in body
    assert not any("_" in k for k in body), f"snake_case keys in {sorted(body)}"

    fetched = await api.client.get(f"/templates/{body['uid']}", headers=api.auth())
    assert fetched.status_code == 200
    assert fetched.json() == body


async def test_create_applies_defaults_and_normalises(api: Api):
    response = await api.client.post("/templates", json={"name": "d", "html": "<b>x</b>", "format": "jpg",
                                                         "locale": "en-GB"}, headers=api.auth())
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["width"], body["height"]) == (1200, 630)
    assert body["format"] == "jpeg"
    assert body["locale"] == "en_GB"
    assert body["css"] == "" and body["sampleData"] is None and body["columnTypes"] == {}
    assert body["pdf"] == {"pageSize": None, "landscape": False, "marginMm": 0.0}


async def test_get_unknown_template_is_404_problem(api: Api):
    response = await api.client.get("/templates/tpl_doesnotexist", headers=api.auth())
    body = assert_problem(response, 404, "template_not_found")
    assert "tpl_doesnotexist" in body["detail"]


async def test_templates_need_a_key(api: Api):
    response = await api.client.get("/templates")
    assert_problem(response, 401, "unauthorized")
    response = await api.client.post("/templates", json={"name": "x", "html": "x"},
                                     headers={"Authorization": "Bearer pr_not_a_real_key_at_all_000000"})
    assert_problem(response, 401, "unauthorized")


# --- list ---------------------------------------------------------------------------------------


async def test_list_is_paginated_newest_first_with_total(api: Api):
    key = fresh_key(api, "list workspace")
    uids = [(await create_template(api, key, name=f"list-{i}"))["uid"] for i in range(5)]
    newest_first = list(reversed(uids))

    response = await api.client.get("/templates", headers=api.auth(key))
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 5 and body["offset"] == 0 and body["limit"] == 20
    assert [t["uid"] for t in body["templates"]] == newest_first
    assert [t["name"] for t in body["templates"]] == [f"list-{i}" for i in (4, 3, 2, 1, 0)]

    page = (await api.client.get("/templates", params={"offset": 1, "limit": 2}, headers=api.auth(key))).json()
    assert page["total"] == 5 and page["offset"] == 1 and page["limit"] == 2
    assert [t["uid"] for t in page["templates"]] == newest_first[1:3]

    tail = (await api.client.get("/templates", params={"offset": 4, "limit": 2}, headers=api.auth(key))).json()
    assert [t["uid"] for t in tail["templates"]] == newest_first[4:]
    beyond = (await api.client.get("/templates", params={"offset": 10}, headers=api.auth(key))).json()
    assert beyond["templates"] == [] and beyond["total"] == 5

    # An updated template shows its current version in the list, and a deleted one leaves it.
    await api.client.put(f"/templates/{uids[0]}", json={"name": "list-0-v2"}, headers=api.auth(key))
    await api.client.delete(f"/templates/{uids[1]}", headers=api.auth(key))
    after = (await api.client.get("/templates", headers=api.auth(key))).json()
    assert after["total"] == 4
    listed = {t["uid"]: t for t in after["templates"]}
    assert uids[1] not in listed
    assert listed[uids[0]]["version"] == 2 and listed[uids[0]]["name"] == "list-0-v2"


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"offset": -1}])
async def test_list_rejects_bad_paging(api: Api, params: dict):
    response = await api.client.get("/templates", params=params, headers=api.auth())
    body = assert_problem(response, 422, "validation_error")
    field = next(iter(params))
    assert error_for(body, field)["value"] == str(params[field])


# --- update -------------------------------------------------------------------------------------


async def test_put_creates_version_2_and_keeps_unspecified_fields(api: Api):
    created = (await api.client.post("/templates", json=FULL_TEMPLATE, headers=api.auth())).json()
    response = await api.client.put(f"/templates/{created['uid']}", json={"css": "p { color: red; }", "width": 700},
                                    headers=api.auth())
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["uid"] == created["uid"]
    assert updated["version"] == 2
    assert updated["css"] == "p { color: red; }" and updated["width"] == 700
    for field in ("name", "html", "height", "format", "quality", "scale", "locale", "sampleData", "columnTypes",
                  "pdf", "createdAt"):
        assert updated[field] == created[field], field
    assert updated["updatedAt"] >= created["updatedAt"]

    again = (await api.client.put(f"/templates/{created['uid']}", json={"name": "renamed"},
                                  headers=api.auth())).json()
    assert again["version"] == 3 and again["name"] == "renamed" and again["css"] == "p { color: red; }"
    fetched = (await api.client.get(f"/templates/{created['uid']}", headers=api.auth())).json()
    assert fetched["version"] == 3 and fetched["name"] == "renamed" and fetched["width"] == 700


async def test_put_can_clear_locale_and_sample_data_with_null(api: Api):
    created = (await api.client.post("/templates", json=FULL_TEMPLATE, headers=api.auth())).json()
    updated = (await api.client.put(f"/templates/{created['uid']}", json={"locale": None, "sampleData": None},
                                    headers=api.auth())).json()
    assert updated["version"] == 2
    assert updated["locale"] is None and updated["sampleData"] is None
    assert updated["columnTypes"] == {"total": "number"} and updated["html"] == created["html"]


async def test_put_partial_pdf_keeps_the_other_pdf_fields(api: Api):
    created = (await api.client.post("/templates", json=FULL_TEMPLATE, headers=api.auth())).json()
    updated = (await api.client.put(f"/templates/{created['uid']}", json={"pdf": {"landscape": False}},
                                    headers=api.auth()))
    assert updated.status_code == 200, updated.text
    assert updated.json()["pdf"] == {"pageSize": "a4", "landscape": False, "marginMm": 12.5}


async def test_put_unknown_template_is_404(api: Api):
    response = await api.client.put("/templates/tpl_nope", json={"name": "x"}, headers=api.auth())
    assert_problem(response, 404, "template_not_found")


async def test_put_changes_what_renders(api: Api):
    template = await create_template(api, html=fill("#ff0000"), width=60, height=40)
    assert close_to(center_pixel(await render_png(api, template["uid"])), (255, 0, 0))
    await api.client.put(f"/templates/{template['uid']}",
                         json={"html": fill("#00ff00"), "width": 90},
                         headers=api.auth())
    data = await render_png(api, template["uid"])
    assert open_image(data).size == (90, 40)
    assert close_to(center_pixel(data), (0, 255, 0))


# --- delete -------------------------------------------------------------------------------------


async def test_delete_is_204_then_404_everywhere(api: Api):
    template = await create_template(api)
    uid = template["uid"]
    response = await api.client.delete(f"/templates/{uid}", headers=api.auth())
    assert response.status_code == 204 and response.content == b""
    assert_problem(await api.client.get(f"/templates/{uid}", headers=api.auth()), 404, "template_not_found")
    assert_problem(await api.client.delete(f"/templates/{uid}", headers=api.auth()), 404, "template_not_found")
    assert_problem(await api.client.put(f"/templates/{uid}", json={"name": "z"}, headers=api.auth()),
                   404, "template_not_found")
    assert_problem(await api.client.post(f"/templates/{uid}/render", json={"variables": {"title": "x"}},
                                         headers=api.auth()), 404, "template_not_found")


# --- variables ----------------------------------------------------------------------------------


async def test_variables_lists_nested_paths_and_loop_items(api: Api):
    html = (
        "<h1>{{ user.name }}</h1><p>{{ user.address.city }}, {{ user.address.zip }}</p>\n"
        "{% for item in items %}<li>{{ item.name }}: {{ item.price | currency('USD') }}</li>{% endfor %}\n"
        "{% set total = 0 %}{{ loop_free | default('x') }}{{ now_is }}"
    )
    template = await create_template(api, html=html)
    response = await api.client.get(f"/templates/{template['uid']}/variables", headers=api.auth())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["templateUid"] == template["uid"] and body["version"] == 1
    assert body["variables"] == sorted([
        "user.name", "user.address.city", "user.address.zip", "items", "items[].name", "items[].price",
        "loop_free", "now_is",
    ])
    # Locals (item, total, loop) and filters are not row variables.
    assert not {"item", "total", "loop", "currency"} & set(body["variables"])


async def test_variables_follow_the_current_version(api: Api):
    template = await create_template(api, html="{{ a.b }}")
    await api.client.put(f"/templates/{template['uid']}", json={"html": "{{ c }}{% for x in d %}{{ x.e }}{% endfor %}"},
                         headers=api.auth())
    body = (await api.client.get(f"/templates/{template['uid']}/variables", headers=api.auth())).json()
    assert body["version"] == 2
    assert body["variables"] == ["c", "d", "d[].e"]


# --- validation ---------------------------------------------------------------------------------


async def test_syntax_error_at_create_names_the_line(api: Api):
    html = "<html>\n<body>\n<p>{{ title }</p>\n</body></html>"
    response = await api.client.post("/templates", json={"name": "bad", "html": html}, headers=api.auth())
    body = assert_problem(response, 422, "template_syntax_error")
    assert body["line"] == 3
    assert "line 3" in body["detail"]
    assert body["field"] == "html"
    # Nothing was stored.
    key = fresh_key(api, "syntax")
    await api.client.post("/templates", json={"name": "bad", "html": html}, headers=api.auth(key))
    assert (await api.client.get("/templates", headers=api.auth(key))).json()["total"] == 0


async def test_syntax_error_at_update_names_the_line_and_keeps_the_old_version(api: Api):
    template = await create_template(api)
    html = "<div>\n{% if a %}\n{{ a }}\n{% endif %}\n{% endfor %}\n</div>"
    response = await api.client.put(f"/templates/{template['uid']}", json={"html": html}, headers=api.auth())
    body = assert_problem(response, 422, "template_syntax_error")
    assert body["line"] == 5 and "line 5" in body["detail"] and "endfor" in body["detail"]
    current = (await api.client.get(f"/templates/{template['uid']}", headers=api.auth())).json()
    assert current["version"] == 1 and current["html"] == template["html"]

    response = await api.client.put(f"/templates/{template['uid']}", json={"html": "ok\n\n{{ a + }}"},
                                    headers=api.auth())
    body = assert_problem(response, 422, "template_syntax_error")
    assert body["line"] == 3 and "line 3" in body["detail"]


@pytest.mark.parametrize(
    ("fields", "field", "bad"),
    [
        ({"locale": "xx_NOPE"}, "locale", "xx_NOPE"),
        ({"columnTypes": {"price": "banana"}}, "columnTypes", "banana"),
        ({"width": 0}, "width", 0),
        ({"width": 10_001}, "width", 10_001),
        ({"height": 20_000}, "height", 20_000),
        ({"format": "gif"}, "format", "gif"),
        ({"pdf": {"pageSize": "b9"}}, "pdf.pageSize", "b9"),
        ({"pdf": {"marginMm": 500}}, "pdf.marginMm", 500),
    ],
)
async def test_create_validation_names_the_camel_case_field_and_value(api: Api, fields: dict, field: str, bad):
    body = {"name": "v", "html": "<p>x</p>", **fields}
    problem = assert_problem(await api.client.post("/templates", json=body, headers=api.auth()),
                             422, "validation_error")
    error = error_for(problem, field)
    value = error["value"]
    if isinstance(value, dict):
        assert bad in value.values()
    else:
        assert value == bad
    assert str(bad) in error["message"] or str(bad) in str(value)
    assert problem["detail"].startswith(f"{field}:")


@pytest.mark.parametrize(
    ("fields", "field", "bad"),
    [
        ({"locale": "zz_ZZZ"}, "locale", "zz_ZZZ"),
        ({"columnTypes": {"when": "timestamp-ish"}}, "columnTypes", "timestamp-ish"),
        ({"width": 10_001}, "width", 10_001),
        ({"scale": 9}, "scale", 9),
    ],
)
async def test_update_validation_names_the_camel_case_field(api: Api, fields: dict, field: str, bad):
    template = await create_template(api)
    problem = assert_problem(await api.client.put(f"/templates/{template['uid']}", json=fields, headers=api.auth()),
                             422, "validation_error")
    error = error_for(problem, field)
    assert bad == error["value"] or (isinstance(error["value"], dict) and bad in error["value"].values())
    current = (await api.client.get(f"/templates/{template['uid']}", headers=api.auth())).json()
    assert current["version"] == 1


async def test_missing_and_unknown_fields_are_named(api: Api):
    problem = assert_problem(await api.client.post("/templates", json={"name": "x"}, headers=api.auth()),
                             422, "validation_error")
    assert error_for(problem, "html")["message"]
    problem = assert_problem(await api.client.post("/templates", json={"name": "x", "html": "y", "colour": "red"},
                                                   headers=api.auth()), 422, "validation_error")
    assert error_for(problem, "colour")["value"] == "red"


# --- assets -------------------------------------------------------------------------------------


async def test_uploaded_asset_renders_through_img_and_css_background(api: Api):
    html = ("<div style='display:flex;position:fixed;inset:0'>"
            "<img src='assets/logo.png' style='width:50%;height:100%;display:block'>"
            "<div class='bg' style='width:50%;height:100%'></div></div>")
    template = await create_template(api, html=html, css=".bg { background: url(assets/bg.png); }",
                                     width=100, height=50)
    uid = template["uid"]
    files = [("file", ("logo.png", png_bytes((0, 0, 255)), "image/png")),
             ("file", ("bg.png", png_bytes((0, 200, 0)), "image/png"))]
    response = await api.client.post(f"/templates/{uid}/assets", files=files, headers=api.auth())
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["templateUid"] == uid
    assert [(a["name"], a["url"], a["contentType"]) for a in body["assets"]] == [
        ("logo.png", "assets/logo.png", "image/png"), ("bg.png", "assets/bg.png", "image/png")]
    assert body["assets"][0]["bytes"] == len(png_bytes((0, 0, 255)))

    listed = (await api.client.get(f"/templates/{uid}", headers=api.auth())).json()["assets"]
    assert sorted(a["name"] for a in listed) == ["bg.png", "logo.png"]

    image = open_image(await render_png(api, uid)).convert("RGB")
    assert image.size == (100, 50)
    assert close_to(image.getpixel((25, 25)), (0, 0, 255))
    assert close_to(image.getpixel((75, 25)), (0, 200, 0))

    # Uploading the same name again replaces the file.
    await api.client.post(f"/templates/{uid}/assets", files={"file": ("logo.png", png_bytes((255, 255, 0)))},
                          headers=api.auth())
    image = open_image(await render_png(api, uid)).convert("RGB")
    assert close_to(image.getpixel((25, 25)), (255, 255, 0))
    listed = (await api.client.get(f"/templates/{uid}", headers=api.auth())).json()["assets"]
    assert sorted(a["name"] for a in listed) == ["bg.png", "logo.png"]

    # Assets belong to the template, not a version: a new version lists and renders them too.
    updated = await api.client.put(f"/templates/{uid}", json={"width": 120}, headers=api.auth())
    assert updated.json()["version"] == 2
    assert sorted(a["name"] for a in updated.json()["assets"]) == ["bg.png", "logo.png"]
    image = open_image(await render_png(api, uid)).convert("RGB")
    assert image.size == (120, 50)
    assert close_to(image.getpixel((30, 25)), (255, 255, 0)) and close_to(image.getpixel((90, 25)), (0, 200, 0))


async def test_template_without_its_asset_fails_with_asset_error(api: Api):
    template = await create_template(api, html="<img src='assets/none.png' style='width:10px;height:10px'>")
    response = await api.client.post(f"/templates/{template['uid']}/render", json={}, headers=api.auth())
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "asset_load_failed"


@pytest.mark.parametrize("name", ["../x.png", "..\\x.png", "sub/x.png", "x.exe", ".hidden.png", "x", "x.png.sh"])
async def test_bad_asset_names_are_refused_naming_the_file(api: Api, name: str):
    template = await create_template(api)
    response = await api.client.post(f"/templates/{template['uid']}/assets",
                                     files={"file": (name, png_bytes((1, 2, 3)), "image/png")}, headers=api.auth())
    body = assert_problem(response, 422, "validation_error")
    assert body["field"] == "file"
    assert body["value"] == name
    assert repr(name) in body["detail"]
    listed = (await api.client.get(f"/templates/{template['uid']}", headers=api.auth())).json()["assets"]
    assert listed == []


async def test_asset_upload_needs_multipart_with_a_file(api: Api):
    template = await create_template(api)
    uid = template["uid"]
    response = await api.client.post(f"/templates/{uid}/assets", content=png_bytes((0, 0, 0)),
                                     headers={**api.auth(), "Content-Type": "image/png"})
    assert_problem(response, 415, "unsupported_media_type")
    response = await api.client.post(f"/templates/{uid}/assets", data={"other": "x"},
                                     files={"notfile": ("a.png", b"x")}, headers=api.auth())
    body = assert_problem(response, 422, "validation_error")
    assert body["field"] == "file"


# --- workspace isolation ------------------------------------------------------------------------


async def test_workspace_b_cannot_see_or_touch_workspace_a_templates(api: Api):
    template = await create_template(api, name="private to A")
    uid = template["uid"]
    b = api.auth(api.key_b)
    requests = [
        api.client.get(f"/templates/{uid}", headers=b),
        api.client.put(f"/templates/{uid}", json={"name": "stolen"}, headers=b),
        api.client.delete(f"/templates/{uid}", headers=b),
        api.client.get(f"/templates/{uid}/variables", headers=b),
        api.client.post(f"/templates/{uid}/assets", files={"file": ("x.png", png_bytes((0, 0, 0)))}, headers=b),
        api.client.post(f"/templates/{uid}/render", json={"variables": {"title": "x"}}, headers=b),
        api.client.post(f"/templates/{uid}/batch-render", json={"variableSets": [{"title": "x"}]}, headers=b),
        api.client.post("/pdf/render", json={"templateUid": uid, "variables": {"title": "x"}}, headers=b),
        api.client.post("/pdf/multi-page", json={"pages": [{"html": "<p>mine</p>"},
                                                           {"templateUid": uid, "variables": {"title": "x"}}]},
                        headers=b),
    ]
    for request in requests:
        response = await request
        body = assert_problem(response, 404, "template_not_found")
        assert uid in body["detail"]

    listed = []
    offset = 0
    while True:
        page = (await api.client.get("/templates", params={"offset": offset, "limit": 100}, headers=b)).json()
        listed += [t["uid"] for t in page["templates"]]
        offset += 100
        if offset >= page["total"]:
            break
    assert uid not in listed

    # A's template is untouched by B's attempts.
    current = (await api.client.get(f"/templates/{uid}", headers=api.auth())).json()
    assert current["version"] == 1 and current["name"] == "private to A" and current["assets"] == []


# --- a running batch keeps its pinned version ---------------------------------------------------


async def test_running_batch_keeps_its_version_after_put(api: Api):
    red = fill("#ff0000", "{{ n }}")
    blue = fill("#0000ff", "{{ n }}")
    template = await create_template(api, html=red, width=40, height=30)
    uid = template["uid"]
    response = await api.client.post(
        f"/templates/{uid}/batch-render",
        json={"variableSets": [{"n": i} for i in range(30)], "concurrency": 1, "format": "png"},
        headers=api.auth(),
    )
    assert response.status_code == 202, response.text
    batch_id = response.json()["batchId"]
    put = await api.client.put(f"/templates/{uid}", json={"html": blue}, headers=api.auth())
    assert put.status_code == 200 and put.json()["version"] == 2
    # The PUT landed while most of the batch was still to render.
    progress = (await api.client.get(f"/templates/batch/{batch_id}/results", headers=api.auth())).json()
    assert progress["pendingCount"] > 10, progress

    done = await wait_for_batch(api, batch_id)
    assert done["status"] == "completed" and done["completedCount"] == 30
    assert done["templateVersion"] == 1
    for index in (0, 14, 29):
        result = done["results"][index]
        assert result["index"] == index
        file = await fetch(api, result["url"])
        assert file.headers["content-type"] == "image/png"
        assert open_image(file.content).size == (40, 30)
        assert close_to(center_pixel(file.content), (255, 0, 0)), index

    response = await api.client.post(f"/templates/{uid}/batch-render", json={"variableSets": [{"n": 1}]},
                                     headers=api.auth())
    assert response.status_code == 202, response.text
    after = await wait_for_batch(api, response.json()["batchId"])
    assert after["status"] == "completed" and after["templateVersion"] == 2
    assert close_to(center_pixel((await fetch(api, after["results"][0]["url"])).content), (0, 0, 255))


async def test_batch_accepted_before_delete_still_renders(api: Api):
    template = await create_template(api, html=fill("#00ff00"), width=20, height=20)
    uid = template["uid"]
    response = await api.client.post(f"/templates/{uid}/batch-render",
                                     json={"variableSets": [{}, {}, {}], "concurrency": 1}, headers=api.auth())
    assert response.status_code == 202
    assert (await api.client.delete(f"/templates/{uid}", headers=api.auth())).status_code == 204
    done = await wait_for_batch(api, response.json()["batchId"])
    assert done["status"] == "completed" and done["completedCount"] == 3
    assert close_to(center_pixel((await fetch(api, done["results"][2]["url"])).content), (0, 255, 0))
