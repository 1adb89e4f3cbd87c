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
- a killed or dead child is replaced on the next render; one child renders one row at a time.

:class:`IsolatedEngine` has the engine's interface (``compile`` → a template with ``render`` and
``variables``): compiling stays in this process (it is bounded by the engine's own limits and must
report syntax errors at once), rendering goes to a child. ``render`` blocks: call it from a worker
thread (``asyncio.to_thread``), as the runner, the job dispatcher and the API do.
"""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import socket
import subprocess
import sys
import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from typing import Any

from pressrun import errors
from pressrun.errors import RowError, TemplateCrashError, TemplateTimeoutError

# How long past the engine's own time budget a child may take before it is killed: the engine
# checks its budget between steps and answers with a clear message when it can.
GRACE_S = 1.0
# Compiled templates a child keeps (by name and source): a job worker sees many templates.
CHILD_CACHE_SIZE = 64


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
        self._variables = variables

    def variables(self) -> list[str]:
        return list(self._variables)

    def render(self, row: Mapping[str, Any], *, locale: str | None = None, strict: bool | None = None) -> str:
        """Row -> HTML, rendered in a child. Raises RowError subclasses (and UsageError for a bad locale)."""
        return self.pool.render(self.name, self.source, dict(row), locale=locale, strict=strict)


class ProcessPool:
    """Up to ``processes`` children, started on demand; one that dies or is killed is replaced."""

    def __init__(self, config: EngineConfig, *, processes: int, memory_mb: int) -> None:
        if processes < 1:
            raise ValueError(f"processes must be at least 1, not {processes}")
        self.config, self.size, self.memory_mb = config, processes, memory_mb
        self._idle: queue.SimpleQueue[Child] = queue.SimpleQueue()
        self._count = 0  # children started and not stopped: idle or rendering
        self._lock = threading.Lock()
        self._children: weakref.WeakSet[Child] = weakref.WeakSet()
        # A child also ends by itself when this process exits (its socket closes); this ends them
        # when the pool is dropped.
        weakref.finalize(self, stop_children, self._children)

    def warm(self) -> None:
        with self._lock:
            while self._count < self.size:
                self._count += 1
                self._idle.put(self._spawn())

    def render(self, name: str, source: str, row: dict[str, Any], *, locale: str | None, strict: bool | None) -> str:
        child = self._take()
        answered = False
        try:
            reply = child.ask(("render", name, source, row, locale, strict), self.config.timeout_s)
            answered = True
        finally:
            if answered and child.alive():
                self._idle.put(child)
            else:  # killed (timeout) or dead (crash): a new child takes its place
                child.stop()
                self._idle.put(self._spawn())
        return unpack(reply)

    def pids(self) -> list[int]:
        """Process ids of the live children (diagnostics, tests)."""
        return sorted(child.process.pid for child in list(self._children) if child.alive())

    def close(self) -> None:
        """Stop the idle children (a render in flight keeps its child; the pool stays usable)."""
        while True:
            try:
                child = self._idle.get_nowait()
            except queue.Empty:
                return
            child.stop()
            with self._lock:
                self._count -= 1

    def _take(self) -> Child:
        with self._lock:
            with contextlib.suppress(queue.Empty):
                return self._idle.get_nowait()
            if self._count < self.size:
                self._count += 1
                return self._spawn()
        return self._idle.get()

    def _spawn(self) -> Child:
        child = Child(self.config, self.memory_mb)
        self._children.add(child)
        return child


class Child:
    """One child process (``python -m pressrun.templating.isolation``) and the socket to it.

    A plain subprocess rather than multiprocessing's spawn, which would re-run the parent's main
    module (the ``pressrun`` command itself) in the child.
    """

    def __init__(self, config: EngineConfig, memory_mb: int) -> None:
        ours, theirs = socket.socketpair()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(theirs.fileno()), json.dumps(asdict(config)), str(memory_mb)],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.connection = Connection(ours.detach())

    def ask(self, request: tuple[Any, ...], budget_s: float) -> tuple[Any, ...]:
        """Send a request and wait for the answer, at most ``budget_s`` (the engine's) plus GRACE_S."""
        try:
            self.connection.send(request)
            if not self.connection.poll(budget_s + GRACE_S):
                self.stop()
                raise TemplateTimeoutError(
                    f"the template ran past its {budget_s:g} s time limit and was stopped "
                    "(setting PRESSRUN_TEMPLATING__TIMEOUT_S)",
                    timeout_s=budget_s,
                )
            return self.connection.recv()
        except (EOFError, OSError):
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


def unpack(reply: tuple[Any, ...]) -> str:
    """A child's answer: the HTML, or the error it raised, rebuilt as the same pressrun error."""
    if reply[0] == "ok":
        return reply[1]
    _, class_name, message, details = reply
    cls = getattr(errors, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, errors.PressrunError)):
        cls = RowError
    raise cls(message, **details)


# --- in the child -------------------------------------------------------------------------------


def serve(connection: Connection, config: EngineConfig, memory_mb: int) -> None:
    """The child's loop: compile (cached) and render what the parent sends until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops us
    limit_memory(memory_mb)
    from pressrun.templating.engine import Engine

    engine = Engine(**asdict(config))
    compiled: OrderedDict[tuple[str, str], Any] = OrderedDict()
    while True:
        try:
            request = connection.recv()
        except (EOFError, OSError):
            return
        _, name, source, row, locale, strict = request
        try:
            key = (name, source)
            template = compiled.get(key)
            if template is None:
                template = compiled[key] = engine.compile(source, name=name)
                if len(compiled) > CHILD_CACHE_SIZE:
                    compiled.popitem(last=False)
            reply: tuple[Any, ...] = ("ok", template.render(row, locale=locale, strict=strict))
        except errors.PressrunError as exc:
            reply = ("error", type(exc).__name__, exc.message, exc.details)
        except MemoryError:
            reply = ("error", "OutputTooLargeError",
                     f"the template ran out of memory (limit {memory_mb} MB, setting PRESSRUN_TEMPLATING__MEMORY_MB)",
                     {"memory_mb": memory_mb})
        except Exception as exc:  # noqa: BLE001 - a bug must fail the row, not the child
            reply = ("error", "RowError", f"the template failed: {type(exc).__name__}: {exc}", {})
        try:
            connection.send(reply)
        except (MemoryError, ValueError, TypeError, AttributeError):  # pickling details or the HTML failed
            connection.send(("error", reply[1] if reply[0] == "error" else "OutputTooLargeError",
                             str(reply[2] if reply[0] == "error" else "the rendered HTML could not be passed on"),
                             {}))
        del reply, request, row


def limit_memory(memory_mb: int) -> None:
    """Cap this process's address space; a template that needs more gets MemoryError."""
    try:
        import resource
    except ImportError:  # not on this platform
        return
    limit = memory_mb * 1024 * 1024
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))



def main(argv: list[str]) -> None:
    fd, config, memory_mb = argv
    serve(Connection(int(fd)), EngineConfig(**json.loads(config)), int(memory_mb))


if __name__ == "__main__":
    main(sys.argv[1:])
