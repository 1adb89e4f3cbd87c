"""The pipeline's one error policy: which errors fail the row, which stop the run (pressrun.pipeline)."""

from __future__ import annotations

import pytest

from pressrun import errors
from pressrun.errors import (
    BrowserUnavailableError,
    ConfigError,
    MissingVariableError,
    OutputError,
    PressrunError,
    RenderTimeoutError,
    RowError,
    TemplateEngineUnavailableError,
    TemplateError,
    UsageError,
)
from pressrun.pipeline import Disposition, Failed, disposition, failure


def all_subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *all_subclasses(sub)]
    return found


@pytest.mark.parametrize("error_class", [RowError, *all_subclasses(RowError)])
def test_every_row_error_fails_its_row(error_class):
    assert disposition(error_class("x")) is Disposition.FAIL_ROW
    failed = failure(error_class("bad row", variable="name"))
    assert isinstance(failed, Failed)
    assert failed.body() == {"code": error_class.code, "message": "bad row", "variable": "name"}


@pytest.mark.parametrize("error_class", [BrowserUnavailableError, TemplateEngineUnavailableError, OutputError,
                                         ConfigError])
def test_errors_of_the_machine_stop_the_run(error_class):
    error = error_class("no way on")
    assert disposition(error) is Disposition.STOP
    with pytest.raises(error_class):
        failure(error)


@pytest.mark.parametrize("error", [UsageError("locale: 'xx' is not known"), TemplateError("gone"),
                                   PressrunError("version 3 of template 9 is missing")])
def test_other_pressrun_errors_fail_the_row_with_their_own_code(error):
    failed = failure(error)
    assert failed.code == error.code and failed.message == error.message


def test_a_bug_fails_its_row_as_internal_error_without_its_text(caplog):
    failed = failure(KeyError("/secret/path"))
    assert failed.body() == {"code": "internal_error", "message": "internal error (KeyError)"}
    assert "/secret/path" not in failed.message
    assert "unexpected error rendering a row" in caplog.text  # the operator gets the traceback


def test_every_error_class_has_a_disposition():
    # A new error class must be placed deliberately: only these stop a run.
    stopping = {cls for cls in vars(errors).values()
                if isinstance(cls, type) and issubclass(cls, PressrunError)
                and disposition(cls("x")) is Disposition.STOP}
    assert stopping == {BrowserUnavailableError, TemplateEngineUnavailableError, OutputError, ConfigError}
    assert disposition(MissingVariableError("x")) is Disposition.FAIL_ROW
    assert disposition(RenderTimeoutError("x")) is Disposition.FAIL_ROW
