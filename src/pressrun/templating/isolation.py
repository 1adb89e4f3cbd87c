"""Templates run in child processes, under a hard time limit and a memory cap.

A template is untrusted code. The sandboxed engine refuses unsafe attributes, imports and oversized
results, and checks its time budget between steps; but one call into C (hashing a value nested
200,000 deep, sorting or joining millions of items) can crash the interpreter, run for minutes or
take gigabytes before the engine sees it again. So rows are rendered in ``templating.processes``
child processes (new interpreters: nothing of the parent's event loop, browser pipes or threads
leaks in):

- each child caps its own address space at ``templating.memory_mb``; running out is a row error;
- the parent waits ``templating.timeout_s`` plus a grace period for an answer, then kills the child
  (``template_timeout``); the engine's own budget usually answers first, with a clearer message;
- a child that dies (a crash in C) fails only the row it was rendering (``template_crashed``);
- a killed or dead child is replaced on the next render; one child renders one row at a time;
- each child confines itself once it has imported the engine (pressrun.templating.confine: no
  file reads outside Python's installation, no writes, sockets, programs or signals), in case a
  template ever escapes the sandbox; it reports what it applied with its first answer, and the pool
  logs a warning once when a layer is missing (an old kernel, no libseccomp);
- a child compiles a template once (its start-up and that compile are not the row's time), then
  rows travel without the source; children get a minimal environment, and answer in JSON, so the
  parent never unpickles anything a child (running untrusted code) sends.

:class:`IsolatedEngine` has the engine's interface (``compile`` → a template with ``render`` and
``variables``): compiling stays in this process (it is bounded by the engine's own limits and must
report syntax errors at once), rendering goes to a child. ``render`` blocks: call it from a worker
thread (``asyncio.to_thread``), as the runner, the job dispatcher and the API do.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from typing import Any

from pressrun import errors
from pressrun.errors import (
    InvalidValueError,
    RowError,
    TemplateCrashError,
    TemplateEngineUnavailableError,
    TemplateTimeoutError,
    UsageError,
)

log = logging.getLogger(__name__)

# How long past the engine's own time budget a child may take before it is killed: the engine
# checks its budget between steps and answers with a clear message when it can.
GRACE_S = 1.0
# Compiled templates a child keeps (by name and source): a job worker sees many templates.
CHILD_CACHE_SIZE = 64
# A new child's start-up (importing the engine, ~0.3 s) plus compiling one template.
COMPILE_BUDGET_S = 30.0
# How long a render waits for a free child before it gives up (all busy: overload, or a bug).
WAIT_FOR_CHILD_S = 300.0
# What a child inherits of this process's environment: enough to run Python, no secrets.
CHILD_ENVIRONMENT = frozenset({"PATH", "PYTHONPATH", "PYTHONHOME", "LANG", "LANGUAGE", "TZ", "TMPDIR"})


@dataclass(frozen=True)
class EngineConfig:
    locale: str = "en_US"
    strict: bool = True
    timeout_s: float = 2.0
    max_output_chars: int = 5_000_000


class IsolatedEngine:
    """An engine whose templates render in child processes. Close it (or use ``with``) when done."""

    def __init__(self, config: EngineConfig, *, processes: int = 2, memory_mb: int = 1024) -> None:
        from pressrun.templating.engine import Engine  # Jinja and Babel: only where templates are used

        self.config = config
        self.engine = Engine(**asdict(config))  # compiles here: syntax errors and variables at once
        self.pool = ProcessPool(config, processes=processes, memory_mb=memory_mb)

    def compile(self, source: str, *, name: str = "template.html") -> IsolatedTemplate:
        return IsolatedTemplate(self.pool, source, name, self.engine.compile(source, name=name).variables())

    def warm(self) -> None:
        """Start the child processes now (they take a moment to import the engine), not on the first row."""
        self.pool.warm()

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> IsolatedEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class IsolatedTemplate:
    """A compiled template whose ``render`` runs in a child process."""

    def __init__(self, pool: ProcessPool, source: str, name: str, variables: list[str]) -> None:
        self.pool, self.source, self.name = pool, source, name
        # How a child knows a template it has compiled: rows then travel without the source.
        self.key = hashlib.sha256(f"{name}\0{source}".encode()).hexdigest()
        self._variables = variables

    def variables(self) -> list[str]:
        return list(self._variables)

    def render(self, row: Mapping[str, Any], *, locale: str | None = None, strict: bool | None = None) -> str:
        """Row -> HTML, rendered in a child. Raises RowError subclasses (and UsageError for a bad locale)."""
        return self.pool.render(self, dict(row), locale=locale, strict=strict)


class ProcessPool:
    """Up to ``processes`` children, started on demand; one that dies or is killed is replaced by
    the next render that needs one."""

    def __init__(self, config: EngineConfig, *, processes: int, memory_mb: int) -> None:
        if processes < 1:
            raise ValueError(f"processes must be at least 1, not {processes}")
        self.config, self.size, self.memory_mb = config, processes, memory_mb
        self._idle: list[Child] = []
        self._count = 0  # children started and not stopped: idle or rendering
        self._closed = False
        self._changed = threading.Condition()
        self._children: weakref.WeakSet[Child] = weakref.WeakSet()
        self._warned_confinement = False
        # A child also ends by itself when this process exits (its socket closes); this ends them
        # when the pool is dropped.
        weakref.finalize(self, stop_children, self._children)

    def warm(self) -> None:
        """Start the missing children now; a failure to start one waits for the first render to report it."""
        while True:
            with self._changed:
                if self._closed or self._count >= self.size:
                    return
                self._count += 1
            try:
                child = self._spawn()
            except OSError:
                with self._changed:
                    self._count -= 1
                return
            self._release(child, healthy=True)

    def render(self, template: IsolatedTemplate, row: dict[str, Any], *, locale: str | None,
               strict: bool | None) -> str:
        try:
            request = pickle.dumps(("render", template.key, row, locale, strict), protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as exc:
            raise InvalidValueError(f"the row holds a value a template cannot be given: {exc}") from None
        child = self._take()
        healthy = False
        try:
            reply = self._ask(child, template, request)
            healthy = True
        finally:
            self._release(child, healthy)
        return unpack(reply)

    def pids(self) -> list[int]:
        """Process ids of the live children (diagnostics, tests)."""
        return sorted(child.process.pid for child in list(self._children) if child.alive())

    def close(self) -> None:
        """Stop the children: idle ones now, busy ones when their render ends. Final: a render
        after it is an error."""
        with self._changed:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._changed.notify_all()
        for child in idle:
            child.stop()

    def _ask(self, child: Child, template: IsolatedTemplate, request: bytes) -> dict[str, Any]:
        for _attempt in (1, 2):
            if template.key not in child.compiled:
                # A new child first imports the engine; compiling is bounded by the engine's own
                # limits. Neither counts against the row's time budget.
                compile_request = pickle.dumps(("compile", template.key, template.name, template.source))
                reply = child.ask(compile_request, COMPILE_BUDGET_S, "prepare the template")
                if "error" in reply:
                    return reply
                child.compiled.add(template.key)
                self._note_confinement(child, reply.get("confinement"))
            reply = child.ask(request, self.config.timeout_s, "render the row")
            if not reply.get("uncompiled"):
                return reply
            child.compiled.discard(template.key)  # the child dropped it from its cache: send it again
        raise TemplateEngineUnavailableError("a template process keeps dropping the template it is given")

    def confinement(self) -> list[dict[str, Any]]:
        """What each live child that has answered reports of its confinement (diagnostics, tests)."""
        return [child.confinement for child in list(self._children) if child.alive() and child.confinement]

    def _note_confinement(self, child: Child, confinement: dict[str, Any] | None) -> None:
        """Remember what a child reports; say once per pool when a layer is missing (an old
        kernel, no libseccomp): the Jinja sandbox is then the only barrier."""
        child.confinement = confinement
        if confinement and confinement["notes"] and not self._warned_confinement:
            self._warned_confinement = True
            log.warning("template processes run without part of their confinement: %s",
                        "; ".join(confinement["notes"]))

    def _take(self) -> Child:
        deadline = time.monotonic() + WAIT_FOR_CHILD_S
        with self._changed:
            if self._closed:  # e.g. a worker thread still on its way in after the run stopped
                raise TemplateEngineUnavailableError("the template processes are closed")
            while True:
                while self._idle:
                    child = self._idle.pop()
                    if child.alive():
                        return child
                    self._count -= 1  # died while idle (killed from outside): not this row's fault
                if self._count < self.size:
                    self._count += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._changed.wait(remaining):
                    raise TemplateEngineUnavailableError(f"no template process became free within {WAIT_FOR_CHILD_S:g} s")
        try:
            return self._spawn()
        except OSError as exc:
            with self._changed:
                self._count -= 1
                self._changed.notify()
            raise TemplateEngineUnavailableError(f"could not start a template process: {exc}") from exc

    def _release(self, child: Child, healthy: bool) -> None:
        with self._changed:
            keep = healthy and not self._closed and child.alive()
            if keep:
                self._idle.append(child)
            else:
                self._count -= 1
            self._changed.notify()
        if not keep:  # killed (timeout), dead (crash) or the pool closed: the next render starts another
            child.stop()

    def _spawn(self) -> Child:
        child = Child(self.config, self.memory_mb)
        self._children.add(child)
        return child


class Child:
    """One child process (``python -m pressrun.templating.isolation``) and the socket to it.

    A plain subprocess rather than multiprocessing's spawn, which would re-run the parent's main
    module (the ``pressrun`` command itself) in the child. It gets a minimal environment (no
    secrets of the parent's), and its answers are JSON: the parent never unpickles what a child
    (which runs untrusted templates) sends.
    """

    def __init__(self, config: EngineConfig, memory_mb: int) -> None:
        ours, theirs = socket.socketpair()
        env = {name: value for name, value in os.environ.items() if name in CHILD_ENVIRONMENT or name.startswith("LC_")}
        try:
            self.process = subprocess.Popen(
                # -P: the working directory stays off sys.path (a jinja2.py there must not be imported).
                [sys.executable, "-P", "-m", __name__, str(theirs.fileno()), json.dumps(asdict(config)), str(memory_mb)],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                env=env,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.connection = Connection(ours.detach())
        self.compiled: set[str] = set()  # keys of the templates this child has compiled
        self.confinement: dict[str, Any] | None = None  # what confine() applied, from its first answer
        # An answer is at most the engine's output limit (4 bytes a character) plus its envelope.
        self.max_reply_bytes = 4 * config.max_output_chars + (1 << 20)

    def ask(self, request: bytes, budget_s: float, what: str) -> dict[str, Any]:
        """Send a request and wait for the answer, at most ``budget_s`` plus GRACE_S."""
        try:
            self.connection.send_bytes(request)
            if not self.connection.poll(budget_s + GRACE_S):
                self.stop()
                raise TemplateTimeoutError(
                    f"the template did not {what} within its {budget_s:g} s time limit and was stopped"
                    + (" (setting PRESSRUN_TEMPLATING__TIMEOUT_S)" if what == "render the row" else ""),
                    timeout_s=budget_s,
                )
            return json.loads(self.connection.recv_bytes(self.max_reply_bytes))
        except (EOFError, OSError, ValueError):
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(1)
            exit_status = describe_exit(self.process.returncode)
            raise TemplateCrashError(
                f"the template crashed the process rendering it ({exit_status}); "
                "this happens with values nested extremely deep or other runaway expressions",
                exit=exit_status,
            ) from None

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.close()
        if self.alive():
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(2)


def stop_children(children: weakref.WeakSet[Child]) -> None:
    for child in list(children):
        child.stop()


def describe_exit(code: int | None) -> str:
    if code is None:
        return "it did not exit"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit status {code}"


def unpack(reply: dict[str, Any]) -> str:
    """A child's answer: the HTML, or the error it raised, rebuilt as the same pressrun error (a row
    error, or a usage error for a bad locale; anything else from a child is a row error)."""
    if "error" not in reply:
        return reply["html"]
    cls = getattr(errors, reply["error"], None)
    if not (isinstance(cls, type) and issubclass(cls, RowError | UsageError)):
        cls = RowError
    details = reply.get("details")
    raise cls(str(reply.get("message", "the template failed")), **(details if isinstance(details, dict) else {}))


# --- in the child -------------------------------------------------------------------------------


def serve(connection: Connection, config: EngineConfig, memory_mb: int) -> None:
    """The child's loop: compile and render what the parent sends, until the socket closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops us
    limit_memory(memory_mb)
    from pressrun.templating.confine import confine
    from pressrun.templating.engine import Engine

    engine = Engine(**asdict(config))
    confinement = asdict(confine())  # after every import the engine needs, before the first request
    compiled: OrderedDict[str, Any] = OrderedDict()
    while True:
        try:
            request = pickle.loads(connection.recv_bytes())  # from the parent, which we trust
        except (EOFError, OSError):
            return
        try:
            reply = answer(request, engine, compiled, memory_mb)
            if reply.get("ok"):
                reply["confinement"] = confinement
            data = json.dumps(reply, default=str).encode()
        except MemoryError:
            data = json.dumps(out_of_memory(memory_mb)).encode()
        del request
        connection.send_bytes(data)


def answer(request: tuple[Any, ...], engine: Any, compiled: OrderedDict[str, Any], memory_mb: int) -> dict[str, Any]:
    try:
        if request[0] == "compile":
            _, key, name, source = request
            compiled[key] = engine.compile(source, name=name)
            if len(compiled) > CHILD_CACHE_SIZE:
                compiled.popitem(last=False)
            return {"ok": True}
        _, key, row, locale, strict = request
        template = compiled.get(key)
        if template is None:
            return {"uncompiled": True}
        compiled.move_to_end(key)
        return {"html": template.render(row, locale=locale, strict=strict)}
    except errors.PressrunError as exc:
        return {"error": type(exc).__name__, "message": exc.message, "details": exc.details}
    except MemoryError:
        return out_of_memory(memory_mb)
    except Exception as exc:  # noqa: BLE001 - a bug must fail the row, not the child
        return {"error": "RowError", "message": f"the template failed: {type(exc).__name__}: {exc}"}


def out_of_memory(memory_mb: int) -> dict[str, Any]:
    return {"error": "OutputTooLargeError",
            "message": f"the template ran out of memory (limit {memory_mb} MB, setting PRESSRUN_TEMPLATING__MEMORY_MB)",
            "details": {"memory_mb": memory_mb}}


def limit_memory(memory_mb: int) -> None:
    """Cap this process's address space, soft and hard; a template that needs more gets MemoryError."""
    try:
        import resource
    except ImportError:  # not on this platform
        return
    limit = memory_mb * 1024 * 1024
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    # The hard limit too: code that escaped the sandbox could otherwise raise the soft one again.
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))



def main(argv: list[str]) -> None:
    fd, config, memory_mb = argv
    serve(Connection(int(fd)), EngineConfig(**json.loads(config)), int(memory_mb))


if __name__ == "__main__":
    main(sys.argv[1:])
