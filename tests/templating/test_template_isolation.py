"""Templates render in child processes: a template that crashes the interpreter, runs away inside one
C call, or asks for gigabytes fails its own row, and the process that runs the batch stays up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from pressrun.errors import (
    InvalidValueError,
    MissingVariableError,
    OutputTooLargeError,
    TemplateCrashError,
    TemplateTimeoutError,
)
from pressrun.templating.isolation import EngineConfig, IsolatedEngine

# Hashing a value nested 200,000 deep recurses in C past the stack: the interpreter segfaults.
CRASH = (
    "{% set ns = namespace(a=0) %}{% for i in range(50000) %}{% set ns.a = ((((ns.a,),),),) %}{% endfor %}"
    "{{ ns.a in {} }}"
)
# One C-level call that runs for many seconds: the engine's own budget is never consulted.
RUNAWAY = "{{ ([[0]] * 100000) | sum(start=[]) }}"
# 800 MB inside one C call (the repr of a list of 200 references to one 4 MB string).
GREEDY = "{% set x = 'x' * 4000000 %}{{ ([x] * 200) | string | length }}"
GOOD = "<p>{{ name | upper }}</p>"


@pytest.fixture
def engine():
    with IsolatedEngine(EngineConfig(timeout_s=0.5), processes=1, memory_mb=512) as engine:
        yield engine


def test_rows_render_in_a_child_process(engine):
    template = engine.compile(GOOD)
    assert template.render({"name": "ann"}) == "<p>ANN</p>"
    [pid] = engine.pool.pids()
    child = psutil.Process(pid)
    assert child.ppid() == os.getpid() and "pressrun.templating.isolation" in " ".join(child.cmdline())


def test_a_template_that_crashes_the_interpreter_fails_its_row_and_the_next_row_renders():
    with IsolatedEngine(EngineConfig(timeout_s=20), processes=1, memory_mb=512) as engine:
        with pytest.raises(TemplateCrashError, match="SIGSEGV") as caught:
            engine.compile(CRASH).render({})
        assert caught.value.code == "template_crashed"
        assert engine.compile(GOOD).render({"name": "bob"}) == "<p>BOB</p>"


def test_a_runaway_c_call_is_stopped_at_the_time_limit(engine):
    started = time.monotonic()
    with pytest.raises(TemplateTimeoutError, match="0.5 s time limit"):
        engine.compile(RUNAWAY).render({})
    assert time.monotonic() - started < 5  # 0.5 s budget + 1 s grace; in-process it ran ~15 s
    assert engine.compile(GOOD).render({"name": "cy"}) == "<p>CY</p>"


def test_a_greedy_template_runs_out_of_its_own_memory_not_the_parents():
    with IsolatedEngine(EngineConfig(timeout_s=10), processes=1, memory_mb=256) as engine:
        before = psutil.Process().memory_info().rss
        with pytest.raises(OutputTooLargeError, match="out of memory"):
            engine.compile(GREEDY).render({})
        assert psutil.Process().memory_info().rss - before < 100 * 1024 * 1024
        assert engine.compile(GOOD).render({"name": "di"}) == "<p>DI</p>"


def test_row_errors_come_back_as_the_same_errors_with_their_details(engine):
    with pytest.raises(MissingVariableError) as caught:
        engine.compile("{{ user.city }}").render({"user": {}})
    assert caught.value.details.get("variable") == "user.city"
    assert "user.city" in caught.value.message


def test_renders_from_many_threads_share_the_children():
    import concurrent.futures

    with IsolatedEngine(EngineConfig(), processes=2, memory_mb=512) as engine:
        template = engine.compile("{{ n * 2 }}")
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda n: template.render({"n": n}), range(200)))
        assert results == [str(n * 2) for n in range(200)]
        assert 1 <= len(engine.pool.pids()) <= 2


def test_children_end_when_the_engine_is_closed_or_the_parent_dies(tmp_path):
    script = textwrap.dedent(
        """
        import json, os
        from pressrun.templating.isolation import EngineConfig, IsolatedEngine
        engine = IsolatedEngine(EngineConfig(), processes=2, memory_mb=512)
        engine.compile("x").render({})
        engine.warm()
        print(json.dumps(engine.pool.pids()), flush=True)
        os._exit(0)  # no clean-up at all: the children must notice on their own
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    kids = json.loads(out.stdout)
    assert len(kids) == 2
    deadline = time.monotonic() + 10
    while any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in kids):
        assert time.monotonic() < deadline, "template processes outlived their parent"
        time.sleep(0.05)

    engine = IsolatedEngine(EngineConfig(), processes=2, memory_mb=512)
    engine.warm()
    pids = engine.pool.pids()
    assert len(pids) == 2
    engine.close()
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)


def test_a_child_that_cannot_be_started_is_an_error_and_does_not_use_up_the_pool(monkeypatch):
    from pressrun.errors import PressrunError
    from pressrun.templating import isolation

    real_child = isolation.Child
    with IsolatedEngine(EngineConfig(), processes=1, memory_mb=512) as engine:
        template = engine.compile(GOOD)

        def no_more_processes(*args, **kwargs):
            raise OSError(24, "Too many open files")

        monkeypatch.setattr(isolation, "Child", no_more_processes)
        for _ in range(3):  # each failure gives its slot back; none waits forever
            with pytest.raises(PressrunError, match="could not start a template process"):
                template.render({"name": "x"})
        monkeypatch.setattr(isolation, "Child", real_child)
        assert template.render({"name": "ok"}) == "<p>OK</p>"


def test_a_row_that_cannot_be_sent_fails_alone_and_keeps_the_child(engine):
    import threading

    template = engine.compile(GOOD)
    assert template.render({"name": "a"}) == "<p>A</p>"
    before = engine.pool.pids()
    with pytest.raises(InvalidValueError, match="cannot be given"):
        template.render({"name": threading.Lock()})
    assert engine.pool.pids() == before
    assert template.render({"name": "b"}) == "<p>B</p>"


def test_a_child_that_died_while_idle_does_not_fail_the_next_row(engine):
    template = engine.compile(GOOD)
    template.render({"name": "a"})
    [pid] = engine.pool.pids()
    psutil.Process(pid).kill()
    psutil.Process(pid).wait(5)
    assert template.render({"name": "b"}) == "<p>B</p>"
    assert engine.pool.pids() != [pid]


def test_closing_stops_a_child_that_was_busy_when_its_render_ends():
    import threading

    engine = IsolatedEngine(EngineConfig(timeout_s=5), processes=1, memory_mb=512)
    slow = engine.compile("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}{{ name }}")
    result: list[str] = []
    worker = threading.Thread(target=lambda: result.append(slow.render({"name": "done"})))
    worker.start()
    deadline = time.monotonic() + 10
    while not engine.pool.pids() and time.monotonic() < deadline:
        time.sleep(0.01)
    [pid] = engine.pool.pids()
    engine.close()
    worker.join(20)
    assert result == ["done"]
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_only_row_and_usage_errors_come_back_from_a_child_as_themselves():
    from pressrun.errors import RowError, TemplateSyntaxError, UsageError
    from pressrun.templating.isolation import unpack

    with pytest.raises(UsageError):
        unpack({"error": "UsageError", "message": "locale: 'xx' is not a known locale"})
    with pytest.raises(RowError) as caught:  # would stop a whole CLI run if it came back as itself
        unpack({"error": "TemplateSyntaxError", "message": "line 1: nested too deeply"})
    assert not isinstance(caught.value, TemplateSyntaxError)
    with pytest.raises(RowError):
        unpack({"error": "NoSuchClass", "message": "?", "details": "not a dict"})


def test_a_closed_engine_starts_no_more_children():
    from pressrun.errors import PressrunError

    engine = IsolatedEngine(EngineConfig(), processes=1, memory_mb=512)
    template = engine.compile(GOOD)
    assert template.render({"name": "a"}) == "<p>A</p>"
    engine.close()
    engine.warm()
    assert engine.pool.pids() == []
    with pytest.raises(PressrunError, match="closed"):
        template.render({"name": "b"})
    assert engine.pool.pids() == []


def test_a_template_process_cannot_raise_its_own_memory_cap():
    """The hard RLIMIT_AS was left unlimited: code that escaped the sandbox could lift the soft cap."""
    with IsolatedEngine(EngineConfig(), processes=1, memory_mb=300) as engine:
        engine.compile("{{ 1 }}").render({})
        [pid] = engine.pool.pids()
        limits = Path(f"/proc/{pid}/limits").read_text()
    [line] = [line for line in limits.splitlines() if line.startswith("Max address space")]
    soft, hard = line.split()[3:5]
    assert soft == hard == str(300 * 2**20)
