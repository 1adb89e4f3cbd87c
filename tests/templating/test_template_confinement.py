"""Template processes confine themselves (Landlock, seccomp): were Jinja's sandbox ever escaped, the
template still could not read the user's files, write anything, open a socket, run a program or
signal another process. And confinement must not cost a legitimate template anything: every filter
renders in a confined process exactly as in this one."""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from pressrun.templating import Engine
from pressrun.templating.isolation import EngineConfig, IsolatedEngine

# In CI (this project's machine: Linux 6.x with Landlock and libseccomp) confinement must be whole;
# elsewhere a kernel or platform without it skips these tests.
IN_CI = os.environ.get("CI") == "true"

# Run in a fresh interpreter, as a template process is: confine, then try what a template that had
# escaped the sandbox would try. Prints what each attempt did.
ESCAPE_ATTEMPTS = textwrap.dedent(
    """
    import json, os, socket, subprocess, sys
    secret, folder, port, parent = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    import pressrun.templating.engine  # what a template process imports before it confines itself
    from dataclasses import asdict
    from pressrun.templating.confine import confine
    report = {"confinement": asdict(confine())}

    def attempt(name, action):
        try:
            action()
            report[name] = "allowed"
        except OSError as exc:
            report[name] = exc.errno

    def connect():
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass

    def new_module():
        import fractions, _lzma  # not imported yet: a stdlib module and a C extension

    def locale_data():
        import babel
        assert babel.Locale.parse("ja_JP").currencies["USD"]

    def time_zone():
        import zoneinfo
        assert zoneinfo.ZoneInfo("Europe/Berlin").key == "Europe/Berlin"

    attempt("read", lambda: open(secret).read())
    attempt("list", lambda: os.listdir(folder))
    attempt("write", lambda: open(os.path.join(folder, "new.txt"), "w").close())
    attempt("remove", lambda: os.unlink(secret))
    attempt("tcp", connect)
    attempt("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close())
    attempt("unix", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close())
    attempt("run", lambda: subprocess.run([sys.executable, "-c", "pass"], check=True))
    attempt("signal", lambda: os.kill(parent, 0))
    attempt("import", new_module)
    attempt("locale_data", locale_data)
    attempt("time_zone", time_zone)
    print(json.dumps(report))
    """
)


@pytest.fixture
def listener():
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(0.2)
        yield server


def run_confined(tmp_path, listener, script: str = ESCAPE_ATTEMPTS) -> dict:
    secret = tmp_path / "secret.txt"
    secret.write_text("the user's data")
    port = listener.getsockname()[1]
    done = subprocess.run(
        [sys.executable, "-P", "-c", script, str(secret), str(tmp_path), str(port), str(os.getpid())],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def require_confinement(confinement: dict) -> None:
    if confinement["landlock_abi"] is None or not confinement["seccomp"]:
        if IN_CI:
            pytest.fail(f"template processes must be confined in CI: {confinement['notes']}")
        pytest.skip(f"no confinement on this machine: {confinement['notes']}")


def test_a_confined_process_cannot_touch_files_network_programs_or_other_processes(tmp_path, listener):
    report = run_confined(tmp_path, listener)
    require_confinement(report["confinement"])
    denied = {"read", "list", "write", "remove", "tcp", "udp", "unix", "run"}
    if report["confinement"]["landlock_abi"] >= 6:  # signal scoping: Linux 6.12
        denied.add("signal")
    assert all(report[name] in (errno.EPERM, errno.EACCES) for name in denied), report
    assert (tmp_path / "secret.txt").read_text() == "the user's data"
    assert not (tmp_path / "new.txt").exists()
    with pytest.raises(TimeoutError):
        listener.accept()  # nothing ever connected


def test_a_confined_process_still_imports_and_loads_locale_and_time_zone_data(tmp_path, listener):
    report = run_confined(tmp_path, listener)
    require_confinement(report["confinement"])
    assert (report["import"], report["locale_data"], report["time_zone"]) == ("allowed",) * 3


def test_the_same_attempts_succeed_unconfined(tmp_path, listener):
    """The check above is not vacuous: without confine() every attempt goes through."""
    script = ESCAPE_ATTEMPTS.replace('report = {"confinement": asdict(confine())}', 'report = {}')
    report = run_confined(tmp_path, listener, script)
    assert report == dict.fromkeys(report, "allowed") and len(report) == 12, report


# Every filter and function, with values of every kind a row holds.
EVERY_FILTER = (
    "{{ price * 0.9 | currency }}|{{ currency(price, 'EUR') }}|{{ price | number(2) }}|{{ share | percent }}|"
    "{{ day | date('long') }}|{{ day | date('yyyy-MM-dd') }}|{{ moment | datetime('medium') }}|"
    "{{ moment | datetime('full') }}|{{ title | truncate(12) }}|{{ title | upper }}|{{ title | lower }}|"
    "{{ title | title }}|{{ missing | default('none') }}|{{ round(price, 1) }}|{{ price | round(1) }}|"
    "{% for item in items %}{{ loop.index }}:{{ item.name }}={{ item.qty * item.unit | number(2) }};{% endfor %}|"
    "{{ title | qr }}"
)
ROW = {
    "price": 1234.5,
    "share": 0.256,
    "day": dt.date(2026, 3, 9),
    "moment": dt.datetime(2026, 3, 9, 14, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    "title": "grüße aus köln",
    "items": [{"name": "a", "qty": 2, "unit": 1.25}, {"name": "b", "qty": 1, "unit": 10}],
}


@pytest.mark.parametrize("locale", ["en_US", "de_DE", "ja_JP", "ar_EG"])
def test_confined_template_processes_render_every_filter_as_this_process_does(locale):
    expected = Engine(locale=locale, strict=False).compile(EVERY_FILTER).render(ROW)
    with IsolatedEngine(EngineConfig(locale=locale, strict=False), processes=1) as engine:
        assert engine.compile(EVERY_FILTER).render(ROW) == expected
        [confinement] = engine.pool.confinement()
    require_confinement(confinement)


def test_a_module_in_the_working_directory_is_not_imported_by_template_processes(tmp_path, monkeypatch):
    """`python -m` puts the working directory first on sys.path: a jinja2.py where a run starts
    would have been imported by every template process in place of Jinja."""
    (tmp_path / "jinja2.py").write_text("raise SystemExit('the working directory was imported from')\n")
    monkeypatch.chdir(tmp_path)
    with IsolatedEngine(EngineConfig(), processes=1) as engine:
        assert engine.compile("<b>{{ name }}</b>").render({"name": "ok"}) == "<b>ok</b>"


def test_the_pool_warns_once_when_a_template_process_reports_missing_confinement(caplog):
    with IsolatedEngine(EngineConfig(), processes=1) as engine:
        pool = engine.pool
        children = [type("Child", (), {"confinement": None})() for _ in range(2)]
        partial = {"landlock_abi": None, "seccomp": True, "notes": ["Landlock not applied: kernel too old"]}
        with caplog.at_level("WARNING", logger="pressrun.templating.isolation"):
            for child in children:
                pool._note_confinement(child, partial)
        assert [record.getMessage() for record in caplog.records] == [
            "template processes run without part of their confinement: Landlock not applied: kernel too old"
        ]
        assert children[1].confinement == partial
