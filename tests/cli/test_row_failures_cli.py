"""Rows that fail for a reason of their own (bad typed value, slow or blocked URL, sandbox escape) fail
alone with the right code in errors.jsonl; the run goes on and exits 1. Also: typed columns and --locale
as they show up in the rendered text."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.cli.cli_support import (
    SMALL_MANIFEST,
    make_template,
    output_names,
    pdf_text,
    read_errors,
    render,
    write_csv,
)

pytestmark = pytest.mark.chromium

# --- 5 and 6. typed columns and locale -----------------------------------------------------------

PRICE_HTML = '<p style="font:14px sans-serif">usd {{ price * 0.9 | currency }} eur {{ price * 0.9 | currency("EUR") }}</p>\n'
PRICE_MANIFEST = SMALL_MANIFEST + '\n[columns]\nprice = "number"\n'


@pytest.fixture(scope="module")
def price_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory.mktemp("prices") / "tpl", PRICE_HTML, PRICE_MANIFEST)


def test_number_column_is_typed_and_a_bad_value_fails_its_row(price_template, tmp_path):
    data = write_csv(tmp_path / "prices.csv", ["id", "price"], [["1", "100"], ["2", "abc"], ["3", "12.5"]])
    out = tmp_path / "out"
    run = render(price_template, data, out, "--format", "pdf")

    assert run.exit_code == 1, run
    assert "2 rendered, 1 failed" in run.stdout
    assert output_names(out) == ["1.pdf", "3.pdf"]
    # "100" * 0.9 only works because the column is a number, not the string "100".
    assert "usd $90.00 eur €90.00" in pdf_text(out / "1.pdf")
    assert "usd $11.25 eur €11.25" in pdf_text(out / "3.pdf")
    [error] = read_errors(out)
    assert error["row"] == 2
    assert error["code"] == "invalid_value"
    assert error["column"] == "price"
    assert error["value"] == "abc"
    assert "price" in error["message"] and "abc" in error["message"]


def test_locale_changes_currency_formatting(price_template, tmp_path):
    data = write_csv(tmp_path / "prices.csv", ["id", "price"], [["1", "100"], ["2", "1234.5"]])
    out = tmp_path / "out"
    run = render(price_template, data, out, "--format", "pdf", "--locale", "de_DE")

    assert run.exit_code == 0, run
    first = pdf_text(out / "1.pdf")
    assert "90,00 €" in first
    assert "90,00 $" in first
    assert "$90.00" not in first
    assert "1.111,05 €" in pdf_text(out / "2.pdf"), "German grouping and decimal separators"


# --- 8. render timeout ---------------------------------------------------------------------------

# Not 1 s: a render's budget also covers opening its page (~0.7-1.6 s on a loaded 2-core box), and a
# timed-out row's page is thrown away, so at 1 s healthy rows time out too. The slow image is released
# on teardown, so its length costs nothing.
RENDER_TIMEOUT_S = 3
SLOW_RESPONSE_S = 30
IMAGE_HTML = '<div style="width:200px;height:100px">{% if img %}<img src="{{ img }}" width="20" height="20">{% endif %}</div>\n'
# A 1×1 transparent GIF.
GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")


class SlowImageHandler(http.server.BaseHTTPRequestHandler):
    release: threading.Event  # set by the fixture on teardown, so no handler thread outlives the test

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.release.wait(SLOW_RESPONSE_S)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "image/gif")
            self.send_header("Content-Length", str(len(GIF)))
            self.end_headers()
            self.wfile.write(GIF)
        except OSError:
            pass  # the renderer gave up and closed the connection: that is the point of the test

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def slow_server() -> Iterator[str]:
    handler = type("Handler", (SlowImageHandler,), {"release": threading.Event()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        handler.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def image_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory.mktemp("images") / "tpl", IMAGE_HTML)


def test_a_row_past_the_render_timeout_fails_alone(image_template, slow_server, tmp_path):
    data = write_csv(tmp_path / "rows.csv", ["id", "img"],
                     [["1", ""], ["2", f"http://{slow_server}/slow.gif"], ["3", ""], ["4", ""]])
    out = tmp_path / "out"
    env = {"PRESSRUN_RENDER__TIMEOUT_S": str(RENDER_TIMEOUT_S), "PRESSRUN_RENDER__ALLOWED_HOSTS": slow_server}
    run = render(image_template, data, out, env=env)

    assert run.exit_code == 1, run
    assert "3 rendered, 1 failed" in run.stdout
    assert output_names(out) == ["1.png", "3.png", "4.png"]
    [error] = read_errors(out)
    assert error["row"] == 2
    assert error["code"] == "render_timeout"
    assert error["timeout_s"] == RENDER_TIMEOUT_S
    assert "PRESSRUN_RENDER__TIMEOUT_S" in error["message"], "operator messages name the setting that fixes them"


# --- 9. blocked URL ------------------------------------------------------------------------------


def test_a_row_loading_a_blocked_url_fails_alone(image_template, tmp_path):
    data = write_csv(tmp_path / "rows.csv", ["id", "img"],
                     [["1", ""], ["2", ""], ["3", "https://example.com/x.png"], ["4", ""]])
    out = tmp_path / "out"
    run = render(image_template, data, out)

    assert run.exit_code == 1, run
    assert "3 rendered, 1 failed" in run.stdout
    assert output_names(out) == ["1.png", "2.png", "4.png"]
    [error] = read_errors(out)
    assert error["row"] == 3
    assert error["code"] == "blocked_url"
    assert error["url"] == "https://example.com/x.png"


# --- 10. sandbox ---------------------------------------------------------------------------------


def test_sandbox_escape_fails_rows_without_crashing(tmp_path):
    template = make_template(tmp_path / "evil", "<p>{{ name }} {{ ''.__class__.__mro__ }}</p>\n")
    data = write_csv(tmp_path / "rows.csv", ["name"], [["a"], ["b"], ["c"]])
    out = tmp_path / "out"
    merged = tmp_path / "all.pdf"
    run = render(template, data, out, "--format", "pdf", "--merge-pdf", merged)

    assert run.exit_code == 1, run
    assert "Traceback" not in run.stderr, run
    assert "0 rendered, 3 failed" in run.stdout
    assert output_names(out) == []
    assert not merged.exists(), "no zero-page PDF when every row failed"
    errors = read_errors(out)
    assert sorted(e["row"] for e in errors) == [1, 2, 3]
    assert {e["code"] for e in errors} == {"sandbox_violation"}
    assert all("__class__" in e["message"] for e in errors), errors
    assert "object" not in " ".join(e["message"] for e in errors), "nothing from inside the process leaks"


def test_a_row_whose_template_crashes_the_interpreter_fails_alone(tmp_path):
    # Hashing a value nested 200,000 deep overflows the C stack: in-process, this segfaulted the run.
    crash = (
        "{% set ns = namespace(a=0) %}{% for i in range(50000) %}{% set ns.a = ((((ns.a,),),),) %}{% endfor %}"
        "{{ ns.a in {} }}"
    )
    template = make_template(tmp_path / "crash", f"<p>{{{{ name }}}}{{% if name == 'b' %}}{crash}{{% endif %}}</p>\n",
                             SMALL_MANIFEST)
    data = write_csv(tmp_path / "rows.csv", ["name"], [["a"], ["b"], ["c"]])
    out = tmp_path / "out"
    # Building the value takes ~0.5 s: a generous budget, so a busy machine cannot turn it into a timeout.
    run = render(template, data, out, env={"PRESSRUN_TEMPLATING__TIMEOUT_S": "30"})

    assert run.exit_code == 1, run
    assert "2 rendered, 1 failed" in run.stdout, run
    assert output_names(out) == ["1.png", "3.png"]
    [error] = read_errors(out)
    assert error["row"] == 2 and error["code"] == "template_crashed", error
    assert "SIGSEGV" in error["message"]


def test_an_output_that_cannot_be_written_stops_the_run_cleanly(tmp_path):
    # A full disk in production; here row 2's file name is taken by a folder. Other workers were
    # left running while the browser closed under them: tracebacks, "unexpected error" logs.
    template = make_template(tmp_path / "tpl", "<p>{{ name }}</p>\n", SMALL_MANIFEST)
    data = write_csv(tmp_path / "rows.csv", ["name"], [[f"r{i}"] for i in range(1, 41)])
    out = tmp_path / "out"
    (out / "02.png").mkdir(parents=True)
    run = render(template, data, out)

    assert run.exit_code == 2, run
    assert "Traceback" not in run.stderr and "unexpected error" not in run.stderr, run
    assert f"error: cannot write {out / '02.png'}" in run.stderr, run
