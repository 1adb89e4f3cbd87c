"""How pages are shared out among browsers (no Chromium needed: nothing is started)."""

from __future__ import annotations

import pytest

from pressrun.rendering import ChromiumRenderer
from pressrun.settings import RenderSettings, default_browsers


@pytest.mark.parametrize(
    ("concurrency", "browsers", "pages"),
    [(4, 2, [2, 2]), (5, 2, [3, 2]), (1, 4, [1]), (3, 8, [1, 1, 1]), (6, 1, [6])],
)
def test_pages_are_shared_out_evenly_and_no_browser_is_idle(concurrency, browsers, pages):
    renderer = ChromiumRenderer(RenderSettings(concurrency=concurrency, browsers=browsers))
    assert [instance.concurrency for instance in renderer.instances] == pages
    assert renderer.concurrency == concurrency


def test_defaults_are_a_browser_per_core_and_two_pages_each():
    settings = RenderSettings()
    assert settings.browsers == default_browsers() >= 1
    assert settings.concurrency == 2 * settings.browsers


def test_cli_concurrency_override_caps_the_browsers():
    renderer = ChromiumRenderer(RenderSettings(browsers=4), concurrency=2)
    assert [instance.concurrency for instance in renderer.instances] == [1, 1]
