"""One exception tree for pressrun.

Every error a user can see is a :class:`PressrunError` with a stable ``code`` (snake_case, documented),
an HTTP status (used by the API), and a ``retryable`` flag (used by the renderer and, later, the job
dispatcher). :func:`error_body` turns any of them into the one dict shape that is written to
``errors.jsonl``, stored on a failed item, and sent in problem+json bodies and webhooks.

::

    PressrunError                      internal_error      500
    ├── UsageError                     usage_error         400   bad option / argument value
    ├── ConfigError                    config_error        500   operator setting is wrong (names the setting)
    ├── TemplateError                  template_error      422   template unusable as a whole
    │   └── TemplateSyntaxError        template_syntax_error     (file + line)
    ├── DataError                      data_error          422   data file unusable as a whole (file + line)
    ├── RowError                       row_error           422   one row fails; the run goes on
    │   ├── MissingVariableError       missing_variable          (names the variable)
    │   ├── InvalidValueError          invalid_value             (names the column and the value)
    │   ├── ExpressionError            expression_error          (a filter / operator failed on a value)
    │   ├── SandboxViolationError      sandbox_violation         (unsafe attribute, import, file access)
    │   ├── TemplateTimeoutError       template_timeout          (expression engine ran past its time budget)
    │   ├── TemplateCrashError         template_crashed          (the process rendering the template died)
    │   ├── OutputTooLargeError        output_too_large          (rendered HTML past its size budget)
    │   ├── BlockedUrlError            blocked_url               (render tried to load a URL the policy refuses)
    │   ├── AssetLoadError             asset_load_failed         (an allowed image/font failed to load)
    │   ├── SelectorNotFoundError      selector_not_found        (no element matches the capture selector)
    │   ├── ScriptError                script_error              (a template script threw; JavaScript mode)
    │   ├── RenderTimeoutError         render_timeout            (Chromium did not finish in time)
    │   ├── EmptyOutputError           empty_output              (Chromium returned an empty capture)
    │   ├── RenderCrashError           render_crashed   retryable (browser or page crashed mid-render)
    │   └── OutputRefusedError         output_refused            (storage refused this one file: too large for it…)
    ├── BrowserUnavailableError        browser_unavailable 503   Chromium cannot be found or started
    ├── TemplateEngineUnavailableError template_engine_unavailable 503  the template processes cannot be started or reached
    ├── OutputError                    output_error        500   an output file cannot be written (disk full, permissions)
    ├── NotFoundError                  not_found           404   no such resource
    ├── LinkExpiredError               link_expired        410   a signed file link past its expiry
    └── InvalidSignatureError          invalid_signature   403   a file link not signed by this service
"""

from __future__ import annotations

from typing import Any


class PressrunError(Exception):
    """Base class. ``message`` is for people; ``code`` is for programs."""

    code = "internal_error"
    http_status = 500
    retryable = False

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        # Details are machine-readable context: field, value, valid, file, line, row, variable, url...
        self.details = {k: v for k, v in details.items() if v is not None}

    def __str__(self) -> str:
        return self.message


class UsageError(PressrunError):
    code = "usage_error"
    http_status = 400


class ConfigError(PressrunError):
    code = "config_error"


class TemplateError(PressrunError):
    code = "template_error"
    http_status = 422


class TemplateSyntaxError(TemplateError):
    code = "template_syntax_error"


class DataError(PressrunError):
    code = "data_error"
    http_status = 422


class RowError(PressrunError):
    code = "row_error"
    http_status = 422


class MissingVariableError(RowError):
    code = "missing_variable"


class InvalidValueError(RowError):
    code = "invalid_value"


class ExpressionError(RowError):
    code = "expression_error"


class SandboxViolationError(RowError):
    code = "sandbox_violation"


class TemplateTimeoutError(RowError):
    code = "template_timeout"


class TemplateCrashError(RowError):
    code = "template_crashed"


class OutputTooLargeError(RowError):
    code = "output_too_large"


class BlockedUrlError(RowError):
    code = "blocked_url"


class AssetLoadError(RowError):
    code = "asset_load_failed"


class ScriptError(RowError):
    code = "script_error"


class SelectorNotFoundError(RowError):
    code = "selector_not_found"


class RenderTimeoutError(RowError):
    code = "render_timeout"
    http_status = 504


class EmptyOutputError(RowError):
    code = "empty_output"
    http_status = 500


class RenderCrashError(RowError):
    code = "render_crashed"
    http_status = 502
    retryable = True


class OutputRefusedError(RowError):
    """Storage refused this row's file while it still takes others (too large for the file system, a
    name it cannot hold): the row fails. A storage that takes nothing (full, read-only) is an OutputError."""

    code = "output_refused"
    http_status = 507


class BrowserUnavailableError(PressrunError):
    code = "browser_unavailable"
    http_status = 503


class TemplateEngineUnavailableError(PressrunError):
    """The machine cannot run templates right now (no process can be started, none became free): not
    the row's fault, so a run stops and a server puts the item back (pressrun.pipeline)."""

    code = "template_engine_unavailable"
    http_status = 503


def error_body(exc: BaseException) -> dict[str, Any]:
    """The one serialised form of an error: ``{"code", "message", **details}``.

    Unknown exceptions are reported as ``internal_error`` with their type name, never their repr,
    so nothing from inside the process leaks to a client.
    """
    if isinstance(exc, PressrunError):
        return {"code": exc.code, "message": exc.message, **exc.details}
    return {"code": PressrunError.code, "message": f"internal error ({type(exc).__name__})"}


class OutputError(PressrunError):
    """A file of the run cannot be written: every row after it would fail the same way, so the run stops."""

    code = "output_error"


class NotFoundError(PressrunError):
    code = "not_found"
    http_status = 404


class LinkExpiredError(PressrunError):
    code = "link_expired"
    http_status = 410


class InvalidSignatureError(PressrunError):
    code = "invalid_signature"
    http_status = 403
