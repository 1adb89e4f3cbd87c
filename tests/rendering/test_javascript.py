"""Templates with JavaScript on (render.javascript): scripts run for every row, nothing carries over
from one row to the next, window.pressrunReady holds the capture back, animation frames run under
frame control, and the network policy and the row timeout still hold."""

from __future__ import annotations

import contextlib
import time

import pytest
from tests.conftest import open_image

from pressrun.errors import AssetLoadError, BlockedUrlError, RenderTimeoutError, ScriptError
from pressrun.models import OutputFormat, RenderOptions
from pressrun.rendering import ChromiumRenderer
from pressrun.settings import RenderSettings

pytestmark = pytest.mark.chromium

OPTIONS = RenderOptions(format=OutputFormat.PNG, width_px=60, height_px=60)
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
PAGE = "<!doctype html><html><head><style>body{{margin:0;background:#f00}}</style></head><body>{body}</body></html>"


@pytest.fixture(scope="module")
async def renderer():
    # One page, so every row after the first reuses the page the previous row was drawn on.
    async with ChromiumRenderer(RenderSettings(concurrency=1, javascript=True, timeout_s=3)) as r:
        yield r


async def colour(renderer, body: str) -> tuple[int, int, int]:
    image = open_image((await renderer.render(PAGE.format(body=body), OPTIONS)).data).convert("RGB")
    return image.getpixel((30, 30))


async def test_a_script_runs_for_every_row(renderer):
    for value in ("0,255,0", "0,0,255", "255,255,0"):
        body = f"<script>document.body.style.background = 'rgb({value})';</script>"
        assert await colour(renderer, body) == tuple(int(v) for v in value.split(","))


async def test_nothing_a_row_declares_or_leaves_running_reaches_the_next(renderer):
    # A top-level const/let declared again would throw in a reused global scope; a global set by the
    # previous row would be visible; a timer it left would repaint this row.
    # (The timer repaints only under a later row's script, so a slow capture of its own row is no matter.)
    body = """<script>
      const row = Math.random();
      document.body.style.background = window.previousRow ? 'rgb(255,0,0)' : 'rgb(0,255,0)';
      window.previousRow = row;
      setInterval(() => { if (window.previousRow !== row) document.body.style.background = 'rgb(255,0,255)'; }, 1);
    </script>"""
    assert await colour(renderer, body) == GREEN
    assert await colour(renderer, body) == GREEN


async def test_pressrun_ready_false_holds_the_capture_until_true(renderer):
    body = """<script>
      window.pressrunReady = false;
      setTimeout(() => { document.body.style.background = 'rgb(0,0,255)'; window.pressrunReady = true; }, 300);
    </script>"""
    assert await colour(renderer, body) == BLUE


async def test_animation_frames_run_before_the_capture(renderer):
    # Chart libraries draw from requestAnimationFrame; under frame control nothing draws unless asked.
    body = """<script>
      window.pressrunReady = false;
      requestAnimationFrame(() => requestAnimationFrame(() => {
        document.body.style.background = 'rgb(0,255,0)';
        window.pressrunReady = true;
      }));
    </script>"""
    assert await colour(renderer, body) == GREEN


async def test_a_page_that_never_gets_ready_times_out_alone(renderer):
    with pytest.raises(RenderTimeoutError):
        await colour(renderer, "<script>window.pressrunReady = false;</script>")
    assert await colour(renderer, "<script>document.body.style.background = 'rgb(0,0,255)';</script>") == BLUE


async def test_a_script_cannot_reach_a_host_the_policy_blocks(renderer):
    # The capture waits for the refusal here: a request still on its way when the page is captured is
    # refused all the same, but may be noticed too late to fail its row.
    body = ("<script>window.pressrunReady = false; fetch('http://example.com/collect?row=1')"
            ".catch(() => {}).finally(() => { window.pressrunReady = true; });</script>")
    with pytest.raises(BlockedUrlError, match="example.com"):
        await colour(renderer, body)


async def test_without_javascript_the_ready_flag_is_never_set_and_nothing_waits():
    async with ChromiumRenderer(RenderSettings(concurrency=1, timeout_s=3)) as renderer:
        assert await colour(renderer, "<script>window.pressrunReady = false;</script>") == RED


async def test_a_script_that_never_returns_times_out_and_the_next_row_renders(renderer):
    with pytest.raises(RenderTimeoutError):
        await colour(renderer, "<script>while (true) {}</script>")
    assert await colour(renderer, "<script>document.body.style.background = 'rgb(0,255,0)';</script>") == GREEN


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("<script>drawChart(document.body);</script>", "drawChart is not defined (line 1"),
        ("<script>window.pressrunReady = false;"
         "setTimeout(() => { throw new Error('async boom'); }, 50);</script>", "async boom"),
        ("<script>Promise.reject(new TypeError('no data'));</script>", "unhandled promise rejection: TypeError: no data"),
    ],
    ids=["while-loading", "after-ready-false", "rejected-promise"],
)
async def test_a_failing_script_fails_its_row_with_its_error(renderer, body, fragment):
    # It was invisible: the first rendered a blank page as a success, the second waited for the
    # timeout and said only render_timeout.
    started = time.monotonic()
    with pytest.raises(ScriptError) as caught:
        await colour(renderer, body)
    assert caught.value.code == "script_error"
    assert fragment in caught.value.message, caught.value.message
    script_error = caught.value.details["script_error"]
    assert isinstance(script_error, str) and fragment.split(" (")[0] in script_error  # its text, not an object
    assert time.monotonic() - started < 2.5  # the render timeout is 3 s
    assert await colour(renderer, "<script>document.body.style.background = 'rgb(0,0,255)';</script>") == BLUE


async def test_an_image_that_fails_to_load_is_not_taken_for_a_script_error(renderer):
    with pytest.raises(AssetLoadError):  # reported as the asset it is
        await colour(renderer, "<img src='missing.png'>")


@pytest.mark.parametrize(
    "body",
    [
        # A responsive chart resizing from its ResizeObserver: Chromium reports a "loop" ErrorEvent.
        "<div id='box' style='width:10px;height:10px'></div><script>const box = document.getElementById('box');"
        "new ResizeObserver(() => { box.style.width = (box.offsetWidth + 1) + 'px'; }).observe(box);"
        "document.body.style.background = 'rgb(0,0,255)';</script>",
    ],
    ids=["resize-observer-loop"],
)
async def test_notices_that_are_not_failures_do_not_fail_the_row(renderer, body):
    assert await colour(renderer, body) == BLUE


@pytest.mark.parametrize(
    "body",
    [
        """<script>
          window.pressrunReady = false;
          (async () => {
            const slow = new Promise((resolve) => setTimeout(resolve, 100));
            const fails = Promise.reject(new Error('optional data missing'));
            await slow;
            try { await fails; } catch (e) { document.body.style.background = 'rgb(0,0,255)'; }
            window.pressrunReady = true;
          })();
        </script>""",
        """<script>
          const fails = Promise.reject(new Error('optional data missing'));
          setTimeout(() => fails.catch(() => { document.body.style.background = 'rgb(0,0,255)'; }), 50);
        </script>""",
    ],
    ids=["while-not-ready", "at-the-capture"],
)
async def test_a_rejection_handled_a_moment_later_does_not_fail_the_row(renderer, body):
    # Code that awaits one promise, then another, handles the second one's rejection only once the
    # first has settled: 'unhandledrejection' fires meanwhile, then 'rejectionhandled'. Neither the
    # wait for pressrunReady nor the capture may end on it.
    assert await colour(renderer, body) == BLUE


async def test_what_a_finished_rows_scripts_still_ask_for_is_not_taken_for_the_next_rows(renderer):
    # A row's document lives until the next row's replaces it, and its timers with it: this one asks
    # for a blocked URL without pause. Those requests used to fail the next row as its own.
    spamming = "<script>setInterval(() => fetch('http://example.com/{path}').catch(() => {{}}), 0);</script>"
    for _ in range(5):
        try:
            await colour(renderer, spamming.format(path="previous-row"))
        except BlockedUrlError as exc:  # its own requests, made before its capture: its own failure
            assert "previous-row" in exc.message, exc.message
        assert await colour(renderer, "<!-- asks for nothing -->") == RED
    # A row's own blocked request is still its own, right after such a row. (It holds the capture
    # until the request has been refused: a request still on its way at the capture is not waited for.)
    with contextlib.suppress(BlockedUrlError):
        await colour(renderer, spamming.format(path="previous-row"))
    with pytest.raises(BlockedUrlError, match="this-row"):
        await colour(renderer, "<script>window.pressrunReady = false; fetch('http://example.com/this-row')"
                               ".catch(() => {}).finally(() => { window.pressrunReady = true; });</script>")


@pytest.mark.parametrize(
    ("body", "error", "fragment"),
    [
        ("<img src='http://example.com/pic.png'><script>location.hash = 'top';</script>", BlockedUrlError, "pic.png"),
        ("<img src='missing.png'><script>history.replaceState(null, '', '/?step=2');</script>",
         AssetLoadError, "missing.png"),
        ("<script>window.pressrunReady = false; fetch('http://example.com/data').catch(() => {})"
         ".finally(() => { history.pushState({}, '', '/chart'); window.pressrunReady = true; });</script>",
         BlockedUrlError, "example.com/data"),
    ],
    ids=["hash-change", "replace-state", "push-state"],
)
async def test_a_rows_own_navigations_keep_its_failed_requests(renderer, body, error, fragment):
    # A router's pushState/replaceState is a navigation too (so is a row sending itself elsewhere):
    # only the arrival of the row's own document starts the row's count of requests.
    with pytest.raises(error, match=fragment):
        await colour(renderer, body)
    assert await colour(renderer, "<!-- asks for nothing -->") == RED
