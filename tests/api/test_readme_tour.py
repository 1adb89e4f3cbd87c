"""The README's API tour works as written: its single-render request, sent to the bundled social card
(what `make run` seeds), renders. It once named two of the card's five variables, and strict mode
answered 422 missing_variable to anyone who copied it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tests.api.conftest import EXAMPLES

from pressrun.cli.server import seed_templates
from pressrun.db import repo

README = Path(__file__).resolve().parents[2] / "README.md"

pytestmark = pytest.mark.chromium


def readme_render_body() -> dict:
    """The JSON body of the README's `curl … /templates/$UID/render … -d '…'` example."""
    text = README.read_text()
    start = text.index("/templates/$UID/render")
    match = re.search(r"-d '(\{.*?\})'", text[start:], re.DOTALL)
    assert match, "the README's render example has a -d body"
    return json.loads(match.group(1))


async def test_the_readme_single_render_example_renders_the_bundled_social_card(api):
    key, record = repo.create_key(api.service.db, name="readme tour", plan="default")
    assert "social-card" in seed_templates(api.service, EXAMPLES, record.workspace_uid)
    listed = (await api.client.get("/templates", headers=api.auth(key))).json()
    templates = listed if isinstance(listed, list) else next(v for v in listed.values() if isinstance(v, list))
    [card] = [t for t in templates if t["name"] == "social-card" or "social" in json.dumps(t)]
    response = await api.client.post(f"/templates/{card['uid']}/render", json=readme_render_body(),
                                     headers=api.auth(key))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"]) == (1200, 630) and body["url"]
