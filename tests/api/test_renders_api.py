"""Synchronous renders through the HTTP API: a stored template, raw HTML to an image, HTML or a
template to a PDF, several pages into one PDF, and the signed URLs the results are served from."""

from __future__ import annotations

import io
import time
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pypdf import PdfReader
from tests.api.conftest import Api, assert_problem, create_template, wait_for_batch
from tests.conftest import open_image

pytestmark = pytest.mark.chromium

# --- helpers ------------------------------------------------------------------------------------


def fill(color: str, inner: str = "") -> str:
    """HTML that paints the whole viewport one colour."""
    return f"<div style='position:fixed;inset:0;background:{color}'>{inner}</div>"


def file_path(url: str) -> str:
    """The path and query of an absolute result URL (http://pressrun.test/files/...)."""
    parts = urlsplit(url)
    assert parts.scheme == "http" and parts.netloc == "pressrun.test", url
    assert parts.path.startswith("/files/"), url
    return f"{parts.path}?{parts.query}"


async def fetch(api: Api, url: str) -> httpx.Response:
    response = await api.client.get(file_path(url))
    assert response.status_code == 200, response.text
    return response


def pixel(data: bytes, xy: tuple[int, int] | None = None) -> tuple[int, int, int]:
    image = open_image(data).convert("RGB")
    return image.getpixel(xy or (image.width // 2, image.height // 2))


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 8) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def pdf_reader(data: bytes) -> PdfReader:
    assert data.startswith(b"%PDF-"), data[:20]
    return PdfReader(io.BytesIO(data))


def page_points(reader: PdfReader, index: int = 0) -> tuple[float, float]:
    box = reader.pages[index].mediabox
    return float(box.width), float(box.height)


def page_text(reader: PdfReader, index: int = 0) -> str:
    return " ".join(reader.pages[index].extract_text().split())




# --- POST /templates/{uid}/render ---------------------------------------------------------------


async def test_template_render_json_and_signed_file(api: Api):
    template = await create_template(api, html=fill("{{ color }}", "{{ title }}"), width=200, height=100)
    response = await api.client.post(f"/templates/{template['uid']}/render",
                                     json={"variables": {"color": "#00ff00", "title": "hi"}}, headers=api.auth())
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"], body["format"]) == (200, 100, "png")
    assert isinstance(body["renderTimeMs"], int) and body["renderTimeMs"] >= 0
    assert "pages" not in body
    expires_at = datetime.fromisoformat(body["expiresAt"])
    assert expires_at.timestamp() > time.time()
    assert parse_qs(urlsplit(body["url"]).query)["expires"] == [str(int(expires_at.timestamp()))]

    file = await fetch(api, body["url"])
    assert file.headers["content-type"] == "image/png"
    assert len(file.content) == body["bytes"]
    image = open_image(file.content)
    assert image.format == "PNG" and image.size == (200, 100)
    assert close_to(pixel(file.content, (190, 90)), (0, 255, 0))


async def test_template_render_overrides_format_size_and_scale(api: Api):
    template = await create_template(api, html=fill("#0000ff"), width=200, height=100)
    uid = template["uid"]
    body = (await api.client.post(f"/templates/{uid}/render",
                                  json={"format": "jpeg", "width": 300, "height": 120, "scale": 2, "quality": 80},
                                  headers=api.auth())).json()
    assert body["format"] == "jpeg"
    assert (body["width"], body["height"]) == (600, 240)
    file = await fetch(api, body["url"])
    assert file.headers["content-type"] == "image/jpeg"
    image = open_image(file.content)
    assert image.format == "JPEG" and image.size == (600, 240)
    assert close_to(pixel(file.content), (0, 0, 255))

    webp = (await api.client.post(f"/templates/{uid}/render", json={"format": "webp"}, headers=api.auth())).json()
    file = await fetch(api, webp["url"])
    assert file.headers["content-type"] == "image/webp"
    assert open_image(file.content).format == "WEBP" and open_image(file.content).size == (200, 100)


async def test_template_render_quality_changes_jpeg_size(api: Api):
    html = ("<div style='position:fixed;inset:0;background:linear-gradient(45deg,#f00,#0f0,#00f,#ff0)'>"
            + "pressrun " * 60 + "</div>")
    template = await create_template(api, html=html, width=300, height=200, format="jpeg")
    sizes = {}
    for quality in (5, 95):
        response = await api.client.post(f"/templates/{template['uid']}/render", json={"quality": quality},
                                         headers={**api.auth(), "Accept": "image/jpeg"})
        assert response.headers["content-type"] == "image/jpeg"
        sizes[quality] = len(response.content)
    assert sizes[5] * 2 < sizes[95], sizes


async def test_template_render_accept_image_returns_the_png_itself(api: Api):
    template = await create_template(api, html=fill("#ff0000"), width=64, height=48)
    response = await api.client.post(f"/templates/{template['uid']}/render", json={"scale": 2},
                                     headers={**api.auth(), "Accept": "image/png"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert int(response.headers["x-render-time-ms"]) >= 0
    image = open_image(response.content)
    assert image.format == "PNG" and image.size == (128, 96)
    assert close_to(pixel(response.content), (255, 0, 0))


async def test_template_render_as_pdf_with_its_page_options(api: Api):
    template = await create_template(api, html="<p>Landscape {{ n }}</p>", format="pdf",
                                     pdf={"pageSize": "a4", "landscape": True})
    response = await api.client.post(f"/templates/{template['uid']}/render", json={"variables": {"n": 7}},
                                     headers={**api.auth(), "Accept": "application/pdf"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    reader = pdf_reader(response.content)
    width, height = page_points(reader)
    assert abs(width - 842) <= 1 and abs(height - 595) <= 1
    assert page_text(reader) == "Landscape 7"

    body = (await api.client.post(f"/templates/{template['uid']}/render", json={"variables": {"n": 8}},
                                  headers=api.auth())).json()
    assert body["format"] == "pdf" and body["pages"] == 1
    file = await fetch(api, body["url"])
    assert file.headers["content-type"] == "application/pdf"
    assert page_text(pdf_reader(file.content)) == "Landscape 8"


async def test_template_render_locale_override_changes_number_formatting(api: Api):
    template = await create_template(api, html="<p>N={{ 1234.5 | number }} C={{ amount | currency('EUR') }}</p>",
                                     format="pdf", locale="en_US", pdf={"pageSize": "a6"})
    texts = {}
    for locale in (None, "de_DE", "en_US"):
        body = {"variables": {"amount": 9876.5}} | ({"locale": locale} if locale else {})
        response = await api.client.post(f"/templates/{template['uid']}/render", json=body,
                                         headers={**api.auth(), "Accept": "application/pdf"})
        assert response.status_code == 200, response.text
        texts[locale] = page_text(pdf_reader(response.content))
    assert texts[None] == "N=1,234.5 C=€9,876.50"
    assert texts["en_US"] == texts[None]
    assert texts["de_DE"] == "N=1.234,5 C=9.876,50 €"


async def test_template_render_bad_locale_is_422(api: Api):
    template = await create_template(api)
    response = await api.client.post(f"/templates/{template['uid']}/render",
                                     json={"variables": {"title": "x"}, "locale": "qq_QQQ"}, headers=api.auth())
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"][0]["field"] == "locale" and body["errors"][0]["value"] == "qq_QQQ"


async def test_template_render_missing_variable_is_422_naming_it(api: Api):
    template = await create_template(api, html="<p>{{ user.name }}</p>\n<p>{{ user.address.city }}</p>")
    response = await api.client.post(f"/templates/{template['uid']}/render",
                                     json={"variables": {"user": {"name": "Ada", "address": {}}}}, headers=api.auth())
    body = assert_problem(response, 422, "missing_variable")
    assert body["variable"] == "user.address.city"
    assert "user.address.city" in body["detail"]
    assert body["line"] == 2

    # With no 'user' at all, the first lookup through it is named.
    response = await api.client.post(f"/templates/{template['uid']}/render", json={}, headers=api.auth())
    body = assert_problem(response, 422, "missing_variable")
    assert body["variable"] == "user.name" and body["line"] == 1


async def test_template_render_applies_column_types(api: Api):
    template = await create_template(api, html="<p>{{ (price * 2) | number }}</p>", format="pdf",
                                     columnTypes={"price": "number"}, pdf={"pageSize": "a6"})
    response = await api.client.post(f"/templates/{template['uid']}/render", json={"variables": {"price": "2.25"}},
                                     headers={**api.auth(), "Accept": "application/pdf"})
    assert response.status_code == 200, response.text
    assert page_text(pdf_reader(response.content)) == "4.5"
    response = await api.client.post(f"/templates/{template['uid']}/render", json={"variables": {"price": "abc"}},
                                     headers=api.auth())
    body = assert_problem(response, 422, "invalid_value")
    assert "price" in body["detail"]


async def test_template_render_rejects_bad_overrides(api: Api):
    template = await create_template(api)
    uid = template["uid"]
    for overrides, field in (({"format": "bmp"}, "format"), ({"width": 0}, "width"), ({"scale": 5}, "scale"),
                             ({"quality": 101}, "quality"), ({"variables": [1, 2]}, "variables")):
        response = await api.client.post(f"/templates/{uid}/render", json=overrides, headers=api.auth())
        body = assert_problem(response, 422, "validation_error")
        assert body["errors"][0]["field"] == field, body


# --- POST /image --------------------------------------------------------------------------------


async def test_image_renders_html_and_css(api: Api):
    response = await api.client.post("/image", json={
        "html": "<div class='box'>{{ label }}</div>", "css": ".box{position:fixed;inset:0;background:#ff8800}",
        "width": 150, "height": 90, "variables": {"label": "x"},
    }, headers=api.auth())
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"], body["format"]) == (150, 90, "png")
    file = await fetch(api, body["url"])
    assert file.headers["content-type"] == "image/png"
    assert open_image(file.content).size == (150, 90)
    assert close_to(pixel(file.content, (140, 80)), (255, 136, 0))


async def test_image_jpeg_with_scale(api: Api):
    response = await api.client.post("/image", json={"html": fill("#00ffff"), "width": 50, "height": 40,
                                                     "format": "jpg", "quality": 90, "scale": 3},
                                     headers={**api.auth(), "Accept": "image/jpeg"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    assert open_image(response.content).size == (150, 120)
    assert close_to(pixel(response.content), (0, 255, 255))


async def test_image_selector_crops_to_the_element(api: Api):
    html = ("<div style='position:fixed;inset:0;background:#ffffff'></div>"
            "<div id='card' style='position:absolute;left:30px;top:20px;width:120px;height:70px;"
            "background:#0000ff'></div>")
    response = await api.client.post("/image", json={"html": html, "width": 400, "height": 300, "selector": "#card"},
                                     headers=api.auth())
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"]) == (120, 70)
    file = await fetch(api, body["url"])
    image = open_image(file.content).convert("RGB")
    assert image.size == (120, 70)
    for xy in ((0, 0), (119, 0), (0, 69), (119, 69), (60, 35)):
        assert close_to(image.getpixel(xy), (0, 0, 255)), xy

    response = await api.client.post("/image", json={"html": html, "width": 400, "height": 300, "selector": "#card",
                                                     "scale": 2}, headers={**api.auth(), "Accept": "image/png"})
    assert open_image(response.content).size == (240, 140)


@pytest.mark.parametrize("selector", ["#nope", ".missing > p", "div[[["])
async def test_image_unknown_selector_is_422(api: Api, selector: str):
    response = await api.client.post("/image", json={"html": "<p id='x'>x</p>", "width": 100, "height": 100,
                                                     "selector": selector}, headers=api.auth())
    body = assert_problem(response, 422, "selector_not_found")
    assert body["selector"] == selector
    assert selector in body["detail"]


async def test_image_validation_and_template_errors(api: Api):
    response = await api.client.post("/image", json={"html": "x", "format": "pdf"}, headers=api.auth())
    assert assert_problem(response, 422, "validation_error")["errors"][0]["field"] == "format"
    response = await api.client.post("/image", json={"html": "x", "width": 10_001}, headers=api.auth())
    error = assert_problem(response, 422, "validation_error")["errors"][0]
    assert error["field"] == "width" and error["value"] == 10_001
    response = await api.client.post("/image", json={"html": "a\n{{ b }"}, headers=api.auth())
    body = assert_problem(response, 422, "template_syntax_error")
    assert body["line"] == 2 and "line 2" in body["detail"]
    response = await api.client.post("/image", json={"html": "{{ who }}"}, headers=api.auth())
    assert assert_problem(response, 422, "missing_variable")["variable"] == "who"


# --- blocked URLs -------------------------------------------------------------------------------


async def test_blocked_url_is_422(api: Api):
    html = "<img src='https://example.com/x.png' style='width:10px;height:10px'>"
    response = await api.client.post("/image", json={"html": html, "width": 50, "height": 50}, headers=api.auth())
    body = assert_problem(response, 422, "blocked_url")
    assert "example.com" in body["detail"]
    assert body["url"] == "https://example.com/x.png"

    template = await create_template(api, html="<div style=\"background:url('http://169.254.169.254/x')\">x</div>")
    response = await api.client.post(f"/templates/{template['uid']}/render", json={}, headers=api.auth())
    assert assert_problem(response, 422, "blocked_url")["url"].startswith("http://169.254.169.254/")

    response = await api.client.post("/pdf/render", json={"html": "<img src='file:///etc/passwd'>"},
                                     headers=api.auth())
    assert_problem(response, 422, "blocked_url")


# --- POST /pdf/render ---------------------------------------------------------------------------


async def test_pdf_render_from_html_a4(api: Api):
    response = await api.client.post("/pdf/render", json={"html": "<h1>Invoice {{ n }}</h1>", "css": "h1{color:#333}",
                                                          "variables": {"n": 42}, "pageSize": "a4"},
                                     headers=api.auth())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["format"] == "pdf" and body["pages"] == 1
    file = await fetch(api, body["url"])
    assert file.headers["content-type"] == "application/pdf"
    assert len(file.content) == body["bytes"]
    reader = pdf_reader(file.content)
    assert len(reader.pages) == 1
    width, height = page_points(reader)
    assert abs(width - 595) <= 1 and abs(height - 842) <= 1
    assert page_text(reader) == "Invoice 42"


async def test_pdf_render_default_page_is_a4_and_landscape_letter(api: Api):
    response = await api.client.post("/pdf/render", json={"html": "<p>default</p>"},
                                     headers={**api.auth(), "Accept": "application/pdf"})
    assert response.headers["content-type"] == "application/pdf"
    width, height = page_points(pdf_reader(response.content))
    assert abs(width - 595) <= 1 and abs(height - 842) <= 1

    response = await api.client.post("/pdf/render", json={"html": "<p>wide</p>", "pageSize": "letter",
                                                          "landscape": True},
                                     headers={**api.auth(), "Accept": "application/pdf"})
    width, height = page_points(pdf_reader(response.content))
    assert abs(width - 792) <= 1 and abs(height - 612) <= 1


async def test_pdf_render_from_template_and_variables(api: Api):
    template = await create_template(api, html="<p>Dear {{ person.name }}</p>", width=400, height=300)
    response = await api.client.post("/pdf/render", json={"templateUid": template["uid"], "pageSize": "a4",
                                                          "variables": {"person": {"name": "Grace"}}},
                                     headers={**api.auth(), "Accept": "application/pdf"})
    assert response.status_code == 200, response.text
    reader = pdf_reader(response.content)
    assert len(reader.pages) == 1
    width, height = page_points(reader)
    assert abs(width - 595) <= 1 and abs(height - 842) <= 1
    assert page_text(reader) == "Dear Grace"

    # Without a page size, the template's own pixel size is the page (400×300 px at 96 dpi = 300×225 pt).
    response = await api.client.post("/pdf/render", json={"templateUid": template["uid"],
                                                          "variables": {"person": {"name": "Grace"}}},
                                     headers={**api.auth(), "Accept": "application/pdf"})
    width, height = page_points(pdf_reader(response.content))
    assert abs(width - 300) <= 1 and abs(height - 225) <= 1

    response = await api.client.post("/pdf/render", json={"templateUid": template["uid"], "variables": {}},
                                     headers=api.auth())
    assert assert_problem(response, 422, "missing_variable")["variable"] == "person.name"
    response = await api.client.post("/pdf/render", json={"templateUid": "tpl_nope"}, headers=api.auth())
    assert_problem(response, 404, "template_not_found")


@pytest.mark.parametrize("body", [{"html": "<p>x</p>", "templateUid": "tpl_any"}, {}, {"variables": {"a": 1}}])
async def test_pdf_render_needs_exactly_one_of_html_and_template(api: Api, body: dict):
    response = await api.client.post("/pdf/render", json=body, headers=api.auth())
    problem = assert_problem(response, 422, "validation_error")
    assert "html" in problem["detail"] and "templateUid" in problem["detail"]


async def test_pdf_render_rejects_unknown_page_size(api: Api):
    response = await api.client.post("/pdf/render", json={"html": "x", "pageSize": "b7"}, headers=api.auth())
    error = assert_problem(response, 422, "validation_error")["errors"][0]
    assert error["field"] == "pageSize" and error["value"] == "b7"


# --- POST /pdf/multi-page -----------------------------------------------------------------------


async def test_multi_page_merges_html_and_template_pages_in_order(api: Api):
    template = await create_template(api, html="<p>Template page {{ n }}</p>", width=300, height=200)
    pages = [
        {"html": "<p>Cover</p>"},
        {"templateUid": template["uid"], "variables": {"n": 1}},
        {"html": "<p>Middle {{ word }}</p>", "variables": {"word": "part"}},
        {"templateUid": template["uid"], "variables": {"n": 2}},
        {"html": "<p>Back</p>", "css": "p{font-size:30px}"},
    ]
    response = await api.client.post("/pdf/multi-page", json={"pages": pages, "pageSize": "a4"}, headers=api.auth())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["format"] == "pdf" and body["pages"] == 5
    file = await fetch(api, body["url"])
    assert file.headers["content-type"] == "application/pdf"
    reader = pdf_reader(file.content)
    assert len(reader.pages) == len(pages)
    assert [page_text(reader, i) for i in range(5)] == [
        "Cover", "Template page 1", "Middle part", "Template page 2", "Back"]
    for i in range(5):
        width, height = page_points(reader, i)
        assert abs(width - 595) <= 1 and abs(height - 842) <= 1


async def test_multi_page_counts_pages_that_overflow(api: Api):
    long_page = "".join(f"<p style='height:400px;margin:0'>Row {i}</p>" for i in range(5))  # 2000 px: 2 A4 pages
    response = await api.client.post("/pdf/multi-page", json={"pages": [{"html": long_page}, {"html": "<p>end</p>"}]},
                                     headers={**api.auth(), "Accept": "application/pdf"})
    assert response.status_code == 200, response.text
    reader = pdf_reader(response.content)
    assert len(reader.pages) == 3
    assert page_text(reader, 2) == "end"


async def test_multi_page_validation(api: Api):
    response = await api.client.post("/pdf/multi-page", json={"pages": []}, headers=api.auth())
    assert assert_problem(response, 422, "validation_error")["errors"][0]["field"] == "pages"
    response = await api.client.post("/pdf/multi-page", json={"pages": [{"html": "<p>ok</p>"}, {}]},
                                     headers=api.auth())
    body = assert_problem(response, 422, "validation_error")
    assert body["field"] == "pages[1]" and body["detail"].startswith("pages[1]:")
    response = await api.client.post("/pdf/multi-page",
                                     json={"pages": [{"html": "<p>ok</p>"}, {"html": "{% if %}"}]},
                                     headers=api.auth())
    body = assert_problem(response, 422, "template_syntax_error")
    assert body["field"] == "pages[1].html"
    response = await api.client.post("/pdf/multi-page", json={"pages": [{"templateUid": "tpl_gone"}]},
                                     headers=api.auth())
    assert_problem(response, 404, "template_not_found")


# --- signed URLs --------------------------------------------------------------------------------


async def test_signed_urls_refuse_tampering_and_report_expiry(api: Api):
    body = (await api.client.post("/image", json={"html": fill("#123456"), "width": 20, "height": 20},
                                  headers=api.auth())).json()
    parts = urlsplit(body["url"])
    key = parts.path.removeprefix("/files/")
    query = parse_qs(parts.query)
    expires, signature = query["expires"][0], query["signature"][0]
    assert int(expires) > time.time()
    ok = await api.client.get(f"{parts.path}?expires={expires}&signature={signature}")
    assert ok.status_code == 200 and ok.headers["content-type"] == "image/png"

    tampered = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    assert_problem(await api.client.get(f"{parts.path}?expires={expires}&signature={tampered}"),
                   403, "invalid_signature")
    # The signature covers the expiry: a later 'expires' with the same signature is refused.
    assert_problem(await api.client.get(f"{parts.path}?expires={int(expires) + 3600}&signature={signature}"),
                   403, "invalid_signature")
    # And the key: the same signature for another file is refused.
    other = parts.path.replace(key, key.replace(".png", ".jpg"))
    assert_problem(await api.client.get(f"{other}?expires={expires}&signature={signature}"),
                   403, "invalid_signature")
    assert_problem(await api.client.get(parts.path), 403, "invalid_signature")

    past = int(time.time()) - 60
    genuine_expired = api.service.signer.sign(key, past)
    body = assert_problem(await api.client.get(f"{parts.path}?{genuine_expired}"), 410, "link_expired")
    assert body["expires"] == past
    # Expired and not genuine: a forgery, not an expired link.
    forged = genuine_expired[:-1] + ("0" if genuine_expired[-1] != "0" else "1")
    assert_problem(await api.client.get(f"{parts.path}?{forged}"), 403, "invalid_signature")


async def test_signed_url_for_missing_file_is_404(api: Api):
    key = "renders/r_doesnotexist.png"
    signed = api.service.signer.sign(key, int(time.time()) + 600)
    assert_problem(await api.client.get(f"/files/{key}?{signed}"), 404, "file_not_found")


async def test_renders_need_a_key(api: Api):
    for path, body in (("/image", {"html": "x"}), ("/pdf/render", {"html": "x"}),
                       ("/pdf/multi-page", {"pages": [{"html": "x"}]})):
        assert_problem(await api.client.post(path, json=body), 401, "unauthorized")


async def test_a_size_override_replaces_the_templates_named_page_in_renders_and_batches(api: Api):
    """The one options rule (pressrun.options), as in `pressrun render --width/--height`: asking for a
    page in pixels gives that page, not the template's A4 with the size ignored."""
    template = await create_template(api, html="<p>{{ n }}</p>", format="pdf", pdf={"pageSize": "a4", "marginMm": 2})
    uid = template["uid"]
    response = await api.client.post(f"/templates/{uid}/render", json={"variables": {"n": 1}, "width": 400,
                                     "height": 300}, headers={**api.auth(), "Accept": "application/pdf"})
    assert response.status_code == 200, response.text
    width, height = page_points(pdf_reader(response.content))
    assert abs(width - 300) <= 1 and abs(height - 225) <= 1  # 400×300 px at 96 px/in

    # Without a size, the template's own page.
    response = await api.client.post(f"/templates/{uid}/render", json={"variables": {"n": 1}},
                                     headers={**api.auth(), "Accept": "application/pdf"})
    width, height = page_points(pdf_reader(response.content))
    assert abs(width - 595) <= 1 and abs(height - 842) <= 1

    # A batch resolves the same way when it is accepted, and its items render with that page even
    # after the template's page changes.
    accepted = await api.client.post(f"/templates/{uid}/batch-render", headers=api.auth(),
                                     json={"variableSets": [{"n": 2}], "width": 400, "height": 300})
    assert accepted.status_code == 202, accepted.text
    done = await wait_for_batch(api, accepted.json()["batchId"])
    assert done["status"] == "completed", done
    file = await fetch(api, done["results"][0]["url"])
    width, height = page_points(pdf_reader(file.content))
    assert abs(width - 300) <= 1 and abs(height - 225) <= 1
