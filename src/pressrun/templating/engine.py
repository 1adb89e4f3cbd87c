"""The expression engine: compile a template once, render it for many rows (template + row -> HTML).

Compiling is a recipe: rewrite pipe precedence (:mod:`.pipes`) -> parse -> list the row variables
(:mod:`.variables`) -> add runtime guards to the syntax tree (:mod:`.pipes`) -> generate code. Rendering runs the
compiled template in a sandbox under a per-render budget (a deadline and an output size) and is the one
seam where anything raised inside a template becomes a :class:`~pressrun.errors.RowError`.

The sandbox is cooperative: the deadline is checked on every attribute lookup, call, operator,
filter and loop iteration, and sizes are checked before operations that could allocate far more
than their inputs (``'x' * 10**9``, ``range(10**9)``, ``'%999999999s'``). It bounds what a template
can do, not what the interpreter can: run renders in worker processes with memory limits as well.
"""

from __future__ import annotations

import functools
import math
import re
import time
import types
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from types import TracebackType
from typing import Any

import babel
import jinja2
from jinja2 import BaseLoader, nodes, pass_eval_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import _PassArg
from markupsafe import EscapeFormatter, Markup

from pressrun.errors import (
    ExpressionError,
    InvalidValueError,
    MissingVariableError,
    OutputTooLargeError,
    PressrunError,
    RowError,
    SandboxViolationError,
    TemplateSyntaxError,
    TemplateTimeoutError,
    UsageError,
)
from pressrun.templating.filters import (
    build_filters,
    check_format_widths,
    check_int_args,
    check_printf_widths,
    check_replace_size,
    limit_builtin_filters,
    output_too_large,
    parse_locale,
    short_repr,
)
from pressrun.templating.pipes import (
    CONCAT_FILTER,
    GUARD_ITERABLE_FILTER,
    RuntimeGuards,
    check_compile_limits,
    locally_bound_names,
    rewrite_pipes,
)
from pressrun.templating.variables import (
    ITERATOR_TYPES,
    MISSING_RENDERS_EMPTY,
    PLAIN_TYPES,
    MissingValue,
    RowUndefined,
    check_output_value,
    check_printable,
    find_variables,
    mapping_method_as_missing,
    missing_variable_path,
)

MAX_RANGE_ITEMS = 100_000
MAX_TEMPLATE_CHARS = 1_000_000  # template source, checked before anything reads it
MAX_INT_BITS = 1_000_000
_PYTHON_FUNCTION_NAME = re.compile(r"^[\w.]+\(\) ")
_PADDING_STR_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})  # 'x'.zfill(10**9)
_NUMBER_TEXT = re.compile(r"\s*[-+]?(\d[\d,]*\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")
# Filters that never make text of their inputs: what they return is checked where it is printed or
# made text. Every other filter's arguments are checked (check_printable) before it runs.
_PASS_THROUGH_FILTERS = frozenset({
    "attr", "batch", "count", "d", "default", "dictsort", "first", "groupby", "items", "last", "length", "list",
    "map", "max", "min", "random", "reject", "rejectattr", "reverse", "select", "selectattr", "slice", "sort",
    "sum", "unique",
})
_SIZED_TYPES = (str, bytes, bytearray, list, tuple, dict)
_NUMBER_TYPES = frozenset({int, float, Decimal})  # exact types: bool and subclasses take the checked path
_CONSTANT_WORK_BINOPS = frozenset({"+", "-", "*", "/", "//", "%"})
_OPERATOR_NAMES = {operator: f"'{operator}'" for operator in ("*", "**", "+", "-", "/", "//", "%")}
# Every chunk comes out of work that checks the deadline itself (loops, calls, filters); checking
# it once in a while here too only bounds the time between chunks of plain template text.
_CHUNKS_PER_DEADLINE_CHECK = 64
FUNCTION_NAMES = ("currency", "number", "percent", "date", "datetime", "truncate",
                  "upper", "lower", "title", "round", "default", "qr")


# --- per-render budget --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _RenderState:
    deadline_s: float  # on the time.monotonic() clock
    timeout_s: float
    locale: babel.Locale


_render_state: ContextVar[_RenderState | None] = ContextVar("pressrun_render_state", default=None)


def _check_deadline() -> None:
    state = _render_state.get()
    if state is not None and time.monotonic() > state.deadline_s:
        raise TemplateTimeoutError(f"rendering took longer than {state.timeout_s} s (timeout_s)",
                                   timeout_s=state.timeout_s)


# --- sandbox ------------------------------------------------------------------------------------


def _denied(attribute: str) -> SandboxViolationError:
    return SandboxViolationError(f"access to {attribute!r} is not allowed in templates", attribute=attribute)


def _capped_range(*args: int) -> range:
    numbers = range(*args)
    try:
        count = len(numbers)
    except OverflowError:
        count = MAX_RANGE_ITEMS + 1
    if count > MAX_RANGE_ITEMS:
        raise ExpressionError(f"range: {count} items is more than the {MAX_RANGE_ITEMS} allowed", limit=MAX_RANGE_ITEMS)
    return numbers


_capped_range.__name__ = _capped_range.__qualname__ = "range"  # as templates know it, in messages


def _deadline_checked(iterable: Any) -> Any:
    for item in iterable:
        _check_deadline()
        yield item


def _guard_iterable(iterable: Any) -> Any:
    _check_deadline()
    return iterable if isinstance(iterable, jinja2.Undefined) else _deadline_checked(iterable)


class _NoFilesLoader(BaseLoader):
    def get_source(self, environment: Any, template: Any) -> Any:
        raise SandboxViolationError("templates cannot include other files",
                                    template=template if isinstance(template, str) else None)


def _finalize(value: Any) -> Any:
    value = check_output_value(value, _check_deadline)
    return "" if value is None else value  # JSON null renders empty, not "None"


# --- only data is made text ----------------------------------------------------------------------
# Python's text of a function, type or template object holds its memory address, and str(), repr()
# and format() have no per-environment hook. So every place where the sandbox makes text of a
# template's values checks them first, all with check_printable: output (_finalize), '~'
# (_concat), '%' (call_binop), str.format/format_map (_PrintableFormatter), the arguments of
# every filter but _PASS_THROUGH_FILTERS (_guarded_filter) and of str methods (call).


def _check_printable(value: Any) -> None:
    if type(value) not in PLAIN_TYPES:
        check_printable(value, _check_deadline)


def _printable_items(items: Any) -> Any:
    """``items | map('upper') | join``: the items of an iterator, checked as they are joined."""
    for item in items:
        _check_printable(item)
        yield item


class _PrintableFormatter(SandboxedFormatter):
    """``'{0}'.format(x)``, ``'{0.upper}'.format(x)``: each field's value, before it is made text."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        value, used_key = super().get_field(field_name, args, kwargs)
        _check_printable(value)
        return value, used_key


class _PrintableEscapeFormatter(_PrintableFormatter, EscapeFormatter):
    pass


class NoFoldingCodeGenerator(CodeGenerator):
    """Jinja's code generator, except that it evaluates nothing while compiling: it turns an output
    expression whose parts are all constant (``{{ "…" | qr }}``) into its value at compile time, which
    runs the filter in the server process, outside the template processes' time and memory limits.
    Only literal text and plain constants are written out as they are."""

    def _output_child_to_const(self, node: nodes.Expr, frame: Frame, finalize: Any) -> str:
        if not isinstance(node, nodes.TemplateData | nodes.Const):
            raise nodes.Impossible()
        return super()._output_child_to_const(node, frame, finalize)


class PressrunSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox (rows cannot be modified in place) with budgets and our error types."""

    code_generator_class = NoFoldingCodeGenerator

    intercepted_binops = frozenset({"*", "**", "+", "-", "/", "//", "%"})

    def __init__(self, *, max_output_chars: int, default_locale: babel.Locale) -> None:
        # optimized=False, and NoFoldingCodeGenerator: Jinja folds constant expressions while compiling,
        # running filters in the server process, outside the template processes' limits
        # ('{{ "<2,200 chars>" | qr }}' × 100 took 12 s to compile). Filters run when a row renders.
        super().__init__(autoescape=True, undefined=RowUndefined, finalize=_finalize, loader=_NoFilesLoader(),
                         optimized=False)
        self.max_output_chars = max_output_chars
        functions = build_filters(lambda: _current_locale(default_locale))
        self.filters.update(limit_builtin_filters(self.filters, max_output_chars))
        self.filters.update(functions)
        self.filters = {name: self._guarded_filter(name, fn) for name, fn in self.filters.items()}
        self.filters[GUARD_ITERABLE_FILTER] = _guard_iterable
        self.filters[CONCAT_FILTER] = self._concat
        self.globals.pop("lipsum", None)
        self.globals["range"] = _capped_range
        # Pictify-style calls (``title(name)``) reach these through a compile-time rewrite
        # (pipes.RuntimeGuards). They are not globals: a row without a ``title`` column must fail
        # with missing_variable, not print a function.
        self.functions = {name: self.filters[name] for name in FUNCTION_NAMES}

    def check_size(self, value: Any, what: str) -> Any:
        if isinstance(value, _SIZED_TYPES) and len(value) > self.max_output_chars:
            raise output_too_large(what, len(value), self.max_output_chars)
        return value

    def _guarded_filter(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        value_index = 0 if _PassArg.from_obj(fn) is None else 1  # after the context Jinja passes first

        makes_text = name not in _PASS_THROUGH_FILTERS
        joins_items = name == "join"

        @functools.wraps(fn)  # keeps jinja's pass_context / pass_eval_context marker
        def guarded(*args: Any, **kwargs: Any) -> Any:
            _check_deadline()
            if len(args) > value_index and type(args[value_index]) not in PLAIN_TYPES:
                # ``order.items | upper`` with no items key: a missing value
                value = mapping_method_as_missing(args[value_index])
                if value is not args[value_index]:
                    args = (*args[:value_index], value, *args[value_index + 1 :])
                elif joins_items and isinstance(value, ITERATOR_TYPES):
                    args = (*args[:value_index], _printable_items(value), *args[value_index + 1 :])
                elif makes_text or callable(value) and not isinstance(value, jinja2.Undefined):
                    check_output_value(value, _check_deadline)
            if makes_text and (kwargs or len(args) > value_index + 1):  # no slice to allocate on the hot path
                for argument in (*args[value_index + 1 :], *kwargs.values()):
                    if type(argument) not in PLAIN_TYPES:
                        check_printable(argument, _check_deadline)
            try:
                result = fn(*args, **kwargs)
            except TypeError as exc:  # wrong arguments: name the filter, not our Python function
                raise ExpressionError(f"{name}: {_PYTHON_FUNCTION_NAME.sub('', str(exc))}", filter=name) from exc
            return self.check_size(result, name)

        return guarded

    @pass_eval_context
    def _concat(self, eval_ctx: Any, values: list[Any]) -> Any:
        """``a ~ b``: None joins as empty text; in lenient mode a missing part makes the result missing."""
        values = ["" if value is None else check_output_value(value, _check_deadline) for value in values]
        if MISSING_RENDERS_EMPTY.get():
            for value in values:
                if isinstance(value, jinja2.Undefined):
                    return value
        check_int_args("'~'", [sum(len(value) for value in values if isinstance(value, str))], self.max_output_chars)
        return markup_join(values) if eval_ctx.autoescape else str_join(values)

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Row keys win over dict methods (order.items). A key found in a dict is the hot path and
        # constant work: no deadline check, which loops, calls, filters and operators make.
        if type(obj) is dict and attribute in obj:
            return obj[attribute]
        _check_deadline()
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        if attribute.startswith("_"):
            raise _denied(attribute)
        if isinstance(obj, RowUndefined):
            return obj.child(attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _check_deadline()
        if isinstance(obj, RowUndefined):
            return obj.child(argument)
        return super().getitem(obj, argument)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise _denied(attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        # Arithmetic on two numbers is the hot path: constant work, nothing to size or print, except
        # int * int and ** whose results can grow without bound (checked below).
        if type(left) in _NUMBER_TYPES and type(right) in _NUMBER_TYPES and operator in _CONSTANT_WORK_BINOPS \
                and not (operator == "*" and type(left) is int and type(right) is int):
            return self.binop_table[operator](left, right)
        _check_deadline()
        if operator == "*":
            self._check_repetition(left, right)
        elif operator == "**":
            _check_power(left, right)
        elif operator == "%" and isinstance(left, str | bytes):
            _check_printable(right)
            check_printf_widths(str(left), self.max_output_chars)
            arguments = right.values() if isinstance(right, Mapping) else right if isinstance(right, tuple) else [right]
            check_fields_size("'%'", left, left.count("%" if isinstance(left, str) else b"%"), arguments,
                              self.max_output_chars)
        try:
            result = self.binop_table[operator](left, right)
        except TypeError as exc:
            clearer = _text_is_not_a_number(operator, left, right, exc)
            if clearer is None:
                raise
            raise clearer from exc
        return self.check_size(result, _OPERATOR_NAMES[operator])

    def _check_repetition(self, left: Any, right: Any) -> None:
        for sequence, count in ((left, right), (right, left)):
            if isinstance(sequence, str | bytes | bytearray | list | tuple) and isinstance(count, int):
                check_int_args("'*'", [len(sequence) * count], self.max_output_chars)
        if _is_int(left) and _is_int(right) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise ExpressionError("'*': the result is too large a number")

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        # Double-underscore names, as in Jinja, so a template's keyword arguments cannot clash.
        _check_deadline()
        if isinstance(__obj, RowUndefined):
            if __obj.is_bare_name():
                raise SandboxViolationError(f"{__obj._undefined_name!r} is not a function available in templates",
                                            function=__obj._undefined_name)
            return __obj()
        if not __self.is_safe_callable(__obj):
            raise SandboxViolationError("calling this function is not allowed in templates")
        if isinstance(getattr(__obj, "__self__", None), str | bytes | bytearray):
            args = _printable_method_arguments(__obj.__name__, args, kwargs)
            __self._check_method_arguments(__obj, args, kwargs)
        name = getattr(__obj, "__name__", "call")
        return __self.check_size(__context.call(__obj, *args, **kwargs), str(name))

    def _check_method_arguments(self, method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Sizes of text and bytes results, before the method allocates them."""
        owner = method.__self__
        name, max_chars = method.__name__, self.max_output_chars
        values = [*args, *kwargs.values()]
        if name in _PADDING_STR_METHODS:
            check_int_args(name, values, max_chars)
        if name == "expandtabs" and values and _is_int(values[0]):
            tabs = owner.count("\t" if isinstance(owner, str) else b"\t")
            check_int_args(name, [len(owner) + tabs * values[0]], max_chars)
        elif name == "replace" and len(args) >= 2:
            check_replace_size(owner, args[0], args[1], max_chars)
        elif name == "join" and values and isinstance(values[0], list | tuple):
            parts = values[0]
            check_int_args(name, [len(owner) * max(len(parts) - 1, 0) + sum(_text_size(part) for part in parts)],
                           max_chars)
        elif name == "translate" and values and isinstance(values[0], Mapping):
            longest = max((_text_size(new) for new in values[0].values()), default=0)
            check_int_args(name, [len(owner) * max(longest, 1)], max_chars)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = self._printable_str_format(value)
        if wrapper is None:
            return None
        template, method_name = value.__self__, value.__name__

        def format_checked(*args: Any, **kwargs: Any) -> str:
            mapped = list(args[0].values()) if args and isinstance(args[0], Mapping) else []
            arguments = mapped if method_name == "format_map" else [*args, *kwargs.values(), *mapped]
            check_format_widths(template, arguments, self.max_output_chars)
            check_fields_size(method_name, template, template.count("{"), arguments, self.max_output_chars)
            try:
                return wrapper(*args, **kwargs)
            except KeyError as exc:
                raise ExpressionError(f"{method_name}: the format string {short_repr(template)} has a field "
                                      f"{{{exc.args[0]}}} but no value named {exc.args[0]!r} was given",
                                      value=short_repr(template)) from exc
            except IndexError as exc:
                raise ExpressionError(f"{method_name}: the format string {short_repr(template)} has more "
                                      f"{{}} fields than the {len(args)} values given", value=short_repr(template)) from exc

        format_checked.__name__ = format_checked.__qualname__ = method_name  # as templates know it, in messages
        return format_checked


    def _printable_str_format(self, value: Any) -> Callable[..., str] | None:
        """Jinja's sandboxed str.format and format_map, with a formatter that checks each field."""
        if not isinstance(value, types.MethodType | types.BuiltinMethodType) \
                or value.__name__ not in ("format", "format_map") or not isinstance(value.__self__, str):
            return None
        template, is_format_map = value.__self__, value.__name__ == "format_map"
        formatter = (_PrintableEscapeFormatter(self, escape=template.escape) if isinstance(template, Markup)
                     else _PrintableFormatter(self))

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError(f"format_map() takes exactly one argument ({len(args) + len(kwargs)} given)")
                args, kwargs = (), args[0]
            return type(template)(formatter.vformat(template, args, kwargs))

        return wrapper


def _printable_method_arguments(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """A str method's arguments, checked: Markup's methods make text of them (escape)."""
    checked = args
    if name == "join" and args and isinstance(args[0], ITERATOR_TYPES):
        args = (_printable_items(args[0]), *args[1:])
        checked = args[1:]
    for argument in (*checked, *kwargs.values()):
        _check_printable(argument)
    return args


def _text_size(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes | bytearray) else len(str(value))


def check_fields_size(what: str, template: Any, fields: int, arguments: Any, max_chars: int) -> None:
    """``('{a}' * 300).format(a=long_text)``: each field may print the longest argument."""
    longest = max((_text_size(argument) for argument in arguments), default=0)
    check_int_args(what, [len(template) + fields * longest], max_chars)


def _text_is_not_a_number(operator: str, left: Any, right: Any, exc: TypeError) -> ExpressionError | None:
    """``price * 0.9`` with price the text '12.50' (an untyped CSV column): say so and how to fix it."""
    for text, other in ((left, right), (right, left)):
        if isinstance(text, str) and _is_number(other) and _NUMBER_TEXT.fullmatch(text):
            return ExpressionError(
                f"'{operator}': {short_repr(text)} is text, not a number, so it cannot be used with {other!r} "
                f"({exc}); declare the column's type in pressrun.toml [columns] (e.g. price = \"number\") "
                "or convert it in the template with | float", value=short_repr(text))
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_power(base: Any, exponent: Any) -> None:
    if _is_int(base) and _is_int(exponent) and abs(base) > 1 and base.bit_length() * exponent > MAX_INT_BITS:
        raise ExpressionError("'**': the result is too large a number")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _check_strict(strict: Any) -> None:
    if not isinstance(strict, bool):
        raise UsageError(f"strict: {strict!r} must be true or false", field="strict")


def _current_locale(default_locale: babel.Locale) -> babel.Locale:
    state = _render_state.get()
    return default_locale if state is None else state.locale


# --- public API ---------------------------------------------------------------------------------


class Engine:
    """Compiles templates for one configuration. Cheap to keep; build once per worker."""

    def __init__(self, *, locale: str = "en_US", strict: bool = True, timeout_s: float = 2.0,
                 max_output_chars: int = 5_000_000) -> None:
        if not _is_number(timeout_s) or not 0 < timeout_s < math.inf:
            raise UsageError(f"timeout_s: {timeout_s!r} must be a finite number of seconds > 0 (e.g. 2.0)",
                             field="timeout_s")
        if not _is_int(max_output_chars) or max_output_chars <= 0:
            raise UsageError(f"max_output_chars: {max_output_chars!r} must be a whole number > 0",
                             field="max_output_chars")
        _check_strict(strict)
        self.locale = parse_locale(locale)
        self.strict = strict
        self.timeout_s = timeout_s
        self.max_output_chars = max_output_chars
        self._env = PressrunSandbox(max_output_chars=max_output_chars, default_locale=self.locale)

    def compile(self, source: str, *, name: str = "template.html") -> CompiledTemplate:
        """Raises TemplateSyntaxError ("template.html line 3: unexpected '}'", file=, line=).

        Also for templates beyond the compile limits: :data:`MAX_TEMPLATE_CHARS` of source,
        :data:`.pipes.MAX_TEMPLATE_TOKENS` tokens in tags and :data:`.pipes.MAX_ELIFS` elifs in one
        if (both checked before parsing), :data:`.pipes.MAX_EXPRESSION_DEPTH` levels in one
        expression and :data:`.pipes.MAX_BLOCK_DEPTH` blocks inside one another. UsageError when
        ``source`` or ``name`` is not a string.
        """
        if not isinstance(source, str):
            raise UsageError(f"template source: expected the template text (a str), not {type(source).__name__}",
                             field="source")
        if not isinstance(name, str) or not name:
            raise UsageError(f"template name: expected a non-empty str, not {name!r}", field="name")
        if len(source) > MAX_TEMPLATE_CHARS:
            raise TemplateSyntaxError(f"{name}: the template is {len(source)} characters, over the limit of "
                                      f"{MAX_TEMPLATE_CHARS}; move large text or images into files next to it",
                                      file=name, limit=MAX_TEMPLATE_CHARS)
        env = self._env
        try:
            ast = env.parse(rewrite_pipes(source, env, name=name), name=name, filename=name)
            check_compile_limits(ast, name)
            variables = find_variables(ast, [*env.globals, *env.functions])
            unshadowed = frozenset(FUNCTION_NAMES) - locally_bound_names(ast)
            RuntimeGuards(unshadowed).visit(ast)
            ast.set_environment(env)
            code = env.compile(ast, name=name, filename=name)
            template = env.template_class.from_code(env, code, env.make_globals(None))
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateSyntaxError(f"{name} line {exc.lineno}: {exc.message}", file=name, line=exc.lineno) from exc
        except RecursionError as exc:
            raise TemplateSyntaxError(f"{name}: expressions are nested too deeply", file=name) from exc
        except (SyntaxError, MemoryError, OverflowError, jinja2.TemplateError) as exc:
            # Python's compiler limits on the generated code, past what check_compile_limits catches.
            line = getattr(exc, "lineno", None) if isinstance(exc, jinja2.TemplateError) else None
            where = f"{name} line {line}" if line else name
            raise TemplateSyntaxError(f"{where}: the template is too complex to compile ({exc}); "
                                      "split long expressions with {% set %} and deep blocks into macros",
                                      file=name, line=line) from exc
        return CompiledTemplate(self, template, name, variables)


class CompiledTemplate:
    """A compiled template; :meth:`render` is the hot path (one call per row)."""

    def __init__(self, engine: Engine, template: jinja2.Template, name: str, variables: list[str]) -> None:
        self.name = name
        self._engine = engine
        self._template = template
        self._variables = variables

    def variables(self) -> list[str]:
        """Sorted row paths the template reads (see :mod:`pressrun.templating.variables`)."""
        return list(self._variables)

    def render(self, row: Mapping[str, Any], *, locale: str | None = None, strict: bool | None = None) -> str:
        """Row -> HTML. Raises RowError subclasses only (and UsageError for an unknown ``locale``)."""
        engine = self._engine
        state = _RenderState(
            deadline_s=time.monotonic() + engine.timeout_s,
            timeout_s=engine.timeout_s,
            locale=engine.locale if locale is None else parse_locale(locale),
        )
        if strict is not None:
            _check_strict(strict)
        lenient = not (engine.strict if strict is None else strict)
        if not isinstance(row, Mapping):
            raise InvalidValueError(f"a row must map column names to values, not {type(row).__name__}")
        state_token, lenient_token = _render_state.set(state), MISSING_RENDERS_EMPTY.set(lenient)
        try:
            return self._render_chunks(row)
        except Exception as exc:  # the seam: nothing but RowError leaves render()
            raise self._row_error(exc, row) from exc
        finally:
            MISSING_RENDERS_EMPTY.reset(lenient_token)
            _render_state.reset(state_token)

    def _render_chunks(self, row: Mapping[str, Any]) -> str:
        max_chars = self._engine.max_output_chars
        chunks: list[str] = []
        size_chars = 0
        for index, chunk in enumerate(self._template.generate(row)):
            size_chars += len(chunk)
            if size_chars > max_chars:
                raise output_too_large("the rendered HTML", size_chars, max_chars)
            if not index % _CHUNKS_PER_DEADLINE_CHECK:
                _check_deadline()
            chunks.append(chunk)
        return "".join(chunks)

    def _row_error(self, exc: Exception, row: Mapping[str, Any]) -> RowError:
        line = _template_line(exc.__traceback__, self.name)
        where = f"{self.name} line {line}" if line is not None else self.name
        if isinstance(exc, MissingValue):
            undefined = exc.undefined
            path = missing_variable_path(undefined, row, self._variables)
            if undefined._undefined_hint:
                message = undefined._undefined_hint
            elif path is None:  # a lookup on the template's own value: no column to name
                message = (f"{where}: {short_repr(undefined._undefined_obj)} has no key or attribute "
                           f"'{undefined._relative_path}'")
            else:
                message = f"missing variable '{path}'"
            return MissingVariableError(message, variable=path, file=self.name, line=line)
        if isinstance(exc, PressrunError):
            error_class = type(exc) if isinstance(exc, RowError) else ExpressionError
            return error_class(f"{where}: {exc.message}", **{**exc.details, "file": self.name, "line": line})
        if isinstance(exc, jinja2.exceptions.SecurityError):
            return SandboxViolationError(f"{where}: this operation is not allowed in templates", file=self.name, line=line)
        if isinstance(exc, MemoryError):
            return OutputTooLargeError(f"{where}: the template ran out of memory", file=self.name, line=line)
        if isinstance(exc, RecursionError):
            # Python words it by where the limit struck ("… while calling a Python object"); one message.
            return ExpressionError(f"{where}: maximum recursion depth exceeded", file=self.name, line=line)
        return ExpressionError(f"{where}: {exc or type(exc).__name__}", file=self.name, line=line)


def _template_line(traceback: TracebackType | None, filename: str) -> int | None:
    """Innermost template line: Jinja rewrites template frames to carry the template's file and line."""
    line = None
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == filename:
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line
