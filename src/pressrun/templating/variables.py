"""Static analysis: the row paths a template reads, from its syntax tree (no rendering).

Paths use dots for keys and ``[]`` for any list index: ``{{ user.address.city }}`` reads
``user.address.city``; ``{% for it in items %}{{ it.name }}`` reads ``items`` and ``items[].name``;
``{{ items[0].name }}`` reads ``items[].name``. Only the full path of each lookup chain is reported,
not its prefixes. Loop variables, ``loop``, ``set``/``with`` locals, macro arguments, filters and
global functions are not row variables and are never reported; a local bound to a plain lookup
(``{% set u = user %}``) is followed, so ``{{ u.name }}`` reports ``user.name``.

At render time this module also names the path of a missing value (:func:`missing_variable_path`)
and keeps anything but data out of the output (:func:`check_output_value`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, MappingView
from contextvars import ContextVar
from decimal import Decimal
from fractions import Fraction
from types import GeneratorType, ModuleType
from typing import Any
from uuid import UUID

import jinja2
from jinja2 import nodes
from jinja2.utils import missing
from markupsafe import Markup

from pressrun.errors import ExpressionError

# Filters that return (some of) the same elements, so ``for x in items | sort`` still ranges over items[].
_ELEMENT_PRESERVING_FILTERS = frozenset(
    {"sort", "reverse", "list", "unique", "select", "reject", "selectattr", "rejectattr", "dictsort"}
)
_ALWAYS_LOCAL_NAMES = ("self",)
_MACRO_IMPLICIT_NAMES = ("caller", "varargs", "kwargs")


class _Scope:
    """Names bound by the template. A binding is a row path (an alias) or None (an opaque local)."""

    def __init__(self, parent: _Scope | None = None) -> None:
        self.parent = parent
        self.bindings: dict[str, str | None] = {}

    def bind(self, name: str, alias: str | None = None) -> None:
        self.bindings[name] = alias

    def lookup(self, name: str) -> tuple[bool, str | None]:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.bindings:
                return True, scope.bindings[name]
            scope = scope.parent
        return False, None


def find_variables(template: nodes.Template, function_names: Iterable[str]) -> list[str]:
    """Sorted row paths read by ``template``; ``function_names`` are globals that are not row data."""
    collector = _Collector(frozenset(function_names))
    root = _Scope()
    for name in _ALWAYS_LOCAL_NAMES:
        root.bind(name)
    collector.visit_all(template.body, root)
    return sorted(collector.paths)


class _Collector:
    def __init__(self, function_names: frozenset[str]) -> None:
        self.function_names = function_names
        self.paths: set[str] = set()

    # --- dispatch -------------------------------------------------------------------------------

    def visit(self, node: nodes.Node, scope: _Scope) -> None:
        visitor = getattr(self, f"visit_{type(node).__name__}", None)
        if visitor is None:
            self.visit_all(node.iter_child_nodes(), scope)
        else:
            visitor(node, scope)

    def visit_all(self, children: Iterable[nodes.Node], scope: _Scope) -> None:
        for child in children:
            self.visit(child, scope)

    def report(self, path: str | None) -> None:
        while path and path.endswith("[]"):
            path = path[:-2]
        if path:
            self.paths.add(path)

    # --- lookups --------------------------------------------------------------------------------

    def chain_path(self, node: nodes.Node, scope: _Scope) -> str | None:
        """The row path of a Name/Getattr/Getitem chain, or None when it is rooted in a local."""
        if isinstance(node, nodes.Name):
            bound, alias = scope.lookup(node.name)
            return alias if bound else node.name
        if isinstance(node, nodes.Getattr):
            base = self.chain_path(node.node, scope)
            return None if base is None else f"{base}.{node.attr}"
        if isinstance(node, nodes.Getitem):
            base = self.chain_path(node.node, scope)
            segment = self._subscript_segment(node.arg, scope)
            return None if base is None else base + segment
        self.visit(node, scope)
        return None

    def _subscript_segment(self, arg: nodes.Node, scope: _Scope) -> str:
        if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
            return f".{arg.value}"
        self.visit(arg, scope)
        return "" if isinstance(arg, nodes.Slice) else "[]"

    def visit_Name(self, node: nodes.Name, scope: _Scope) -> None:
        if node.ctx == "load":
            self.report(self.chain_path(node, scope))

    def visit_Getattr(self, node: nodes.Getattr, scope: _Scope) -> None:
        self.report(self.chain_path(node, scope))

    visit_Getitem = visit_Getattr

    def visit_Call(self, node: nodes.Call, scope: _Scope) -> None:
        callee = node.node
        if isinstance(callee, nodes.Name):
            bound, _alias = scope.lookup(callee.name)
            if not bound and callee.name not in self.function_names:
                self.report(callee.name)
        elif isinstance(callee, nodes.Getattr):  # a method call reads the object, not the method
            self.report(self.chain_path(callee.node, scope))
        else:
            self.visit(callee, scope)
        self.visit_all([*node.args, *node.kwargs], scope)
        self.visit_all([arg for arg in (node.dyn_args, node.dyn_kwargs) if arg is not None], scope)

    # --- statements that bind names -------------------------------------------------------------

    def alias_of(self, value: nodes.Node, scope: _Scope) -> str | None:
        """Visit an assigned value; return its row path when it is a plain lookup chain."""
        if isinstance(value, nodes.Name | nodes.Getattr | nodes.Getitem):
            return self.chain_path(value, scope)
        self.visit(value, scope)
        return None

    @staticmethod
    def bind_target(target: nodes.Node, scope: _Scope, alias: str | None) -> None:
        if isinstance(target, nodes.Name):
            scope.bind(target.name, alias)
        elif isinstance(target, nodes.Tuple):
            for item in target.items:
                _Collector.bind_target(item, scope, None)

    def visit_Assign(self, node: nodes.Assign, scope: _Scope) -> None:
        alias = self.alias_of(node.node, scope)
        self.bind_target(node.target, scope, alias)

    def visit_AssignBlock(self, node: nodes.AssignBlock, scope: _Scope) -> None:
        self.visit_all(node.body, scope)
        if node.filter is not None:
            self.visit(node.filter, scope)
        self.bind_target(node.target, scope, None)

    def visit_With(self, node: nodes.With, scope: _Scope) -> None:
        inner = _Scope(scope)
        for target, value in zip(node.targets, node.values, strict=False):
            self.bind_target(target, inner, self.alias_of(value, scope))
        self.visit_all(node.body, inner)

    def iterable_path(self, node: nodes.Node, scope: _Scope) -> str | None:
        while isinstance(node, nodes.Filter) and node.name in _ELEMENT_PRESERVING_FILTERS and node.node:
            self.visit_all([*node.args, *node.kwargs], scope)
            node = node.node
        if isinstance(node, nodes.Name | nodes.Getattr | nodes.Getitem):
            path = self.chain_path(node, scope)
            self.report(path)
            return path
        self.visit(node, scope)
        return None

    def visit_For(self, node: nodes.For, scope: _Scope) -> None:
        iterable = self.iterable_path(node.iter, scope)
        inner = _Scope(scope)
        inner.bind("loop")
        self.bind_target(node.target, inner, None if iterable is None else f"{iterable}[]")
        if node.test is not None:
            self.visit(node.test, inner)
        self.visit_all(node.body, inner)
        self.visit_all(node.else_, scope)

    def _visit_macro_body(self, node: nodes.Macro | nodes.CallBlock, scope: _Scope) -> None:
        self.visit_all(node.defaults, scope)
        inner = _Scope(scope)
        for name in _MACRO_IMPLICIT_NAMES:
            inner.bind(name)
        for arg in node.args:
            self.bind_target(arg, inner, None)
        self.visit_all(node.body, inner)

    def visit_Macro(self, node: nodes.Macro, scope: _Scope) -> None:
        scope.bind(node.name)
        self._visit_macro_body(node, scope)

    def visit_CallBlock(self, node: nodes.CallBlock, scope: _Scope) -> None:
        self.visit(node.call, scope)
        self._visit_macro_body(node, scope)

    def visit_Import(self, node: nodes.Import, scope: _Scope) -> None:
        scope.bind(node.target)

    def visit_FromImport(self, node: nodes.FromImport, scope: _Scope) -> None:
        for name in node.names:
            scope.bind(name[1] if isinstance(name, tuple) else name)


# --- runtime: which path a missing value stands for ----------------------------------------------

# Set per render by the engine: lenient mode renders missing values as empty instead of failing.
MISSING_RENDERS_EMPTY: ContextVar[bool] = ContextVar("pressrun_missing_renders_empty", default=False)
MAX_ROW_NODES_SEARCHED = 10_000
_LIST_INDEX = re.compile(r"\[-?\d+\]")


def _join_path(prefix: str, key: Any) -> str:
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{prefix}[{key}]"
    if key is None:
        return prefix
    return f"{prefix}.{key}" if prefix else str(key)


class MissingValue(jinja2.UndefinedError):
    """Raised when a template uses a missing value; carries it so the seam can name its path."""

    def __init__(self, undefined: RowUndefined) -> None:
        super().__init__(undefined._undefined_message)
        self.undefined = undefined


class RowUndefined(jinja2.Undefined):
    """A missing value that remembers its path. Lookups on it chain (``user.address.city``).

    Jinja's undefined class is per environment but strictness is per render, so one class serves
    both modes: strict raises on any use except ``is defined`` and ``default``; lenient acts like
    Jinja's ChainableUndefined (empty string, empty iterable, false), and a missing operand makes
    the whole operation missing: ``price * qty``, ``-qty`` and ``qty > 1`` with ``qty`` missing are
    missing values themselves, so they print empty, pass through filters and count as false.
    ``==`` and ``!=`` still compare (a missing value equals only another missing value).
    """

    __slots__ = ("_relative_path",)

    def __init__(self, hint: str | None = None, obj: Any = missing, name: Any = None,
                 exc: type[jinja2.TemplateRuntimeError] = jinja2.UndefinedError,
                 relative_path: str | None = None) -> None:
        super().__init__(hint, obj, name, exc)
        self._relative_path = _join_path("", name) if relative_path is None else relative_path

    def child(self, key: Any) -> RowUndefined:
        return RowUndefined(self._undefined_hint, self._undefined_obj, key,
                            relative_path=_join_path(self._relative_path, key))

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> Any:
        raise MissingValue(self)

    def _lenient_or_fail(self, lenient_value: Any) -> Any:
        return lenient_value if MISSING_RENDERS_EMPTY.get() else self._fail_with_undefined_error()

    def _missing_result(self, *args: Any, **kwargs: Any) -> Any:
        return self._lenient_or_fail(self)

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _missing_result
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = _missing_result
    __mod__ = __rmod__ = __pow__ = __rpow__ = __pos__ = __neg__ = _missing_result
    __lt__ = __le__ = __gt__ = __ge__ = _missing_result
    __int__ = __float__ = __complex__ = _fail_with_undefined_error  # must return a number, so they fail

    def __str__(self) -> str:
        return self._lenient_or_fail("")

    def __iter__(self) -> Any:
        return self._lenient_or_fail(iter(()))

    def __len__(self) -> int:
        return self._lenient_or_fail(0)

    def __bool__(self) -> bool:
        return self._lenient_or_fail(False)

    def __contains__(self, item: Any) -> bool:
        return self._lenient_or_fail(False)

    def __eq__(self, other: Any) -> bool:
        return self._lenient_or_fail(type(self) is type(other))

    def __ne__(self, other: Any) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return self._lenient_or_fail(id(type(self)))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._lenient_or_fail(self)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # keep Python's protocol probing (and copy/pickle) working
            raise AttributeError(name)
        return self.child(name)

    def __getitem__(self, key: Any) -> RowUndefined:
        return self.child(key)

    def is_bare_name(self) -> bool:
        """True for a top-level name such as ``open``, false for ``user.open``."""
        return self._undefined_obj is missing and self._undefined_hint is None \
            and self._relative_path == self._undefined_name


def _find_in_row(row: Mapping[str, Any], target: Any) -> str | None:
    """The one path at which ``target`` (by identity) sits in the row, or None if absent or ambiguous.

    Only containers are looked up: Python shares small ints, short strings, True and None, so a
    ``0`` from ``range(3)`` would otherwise be found at any column holding 0.
    """
    if not isinstance(target, Mapping | list) and not (isinstance(target, tuple) and target):
        return None
    matches: list[str] = []
    pending: list[tuple[str, Any]] = [(str(key), value) for key, value in row.items()]
    for _ in range(MAX_ROW_NODES_SEARCHED):
        if not pending:
            break
        path, value = pending.pop()
        if value is target:
            matches.append(path)
        if isinstance(value, Mapping):
            pending.extend((f"{path}.{key}", item) for key, item in value.items())
        elif isinstance(value, list | tuple):
            pending.extend((f"{path}[{index}]", item) for index, item in enumerate(value))
    return matches[0] if len(matches) == 1 else None


def _value_at(row: Mapping[str, Any], path: str) -> Any:
    """The row value at a dotted path without list indexes, or ``missing``."""
    value: Any = row
    for key in path.split("."):
        if not isinstance(value, Mapping) or key not in value:
            return missing
        value = value[key]
    return value


def _only_path_ending_with(relative: str, parent: Any, row: Mapping[str, Any],
                           template_paths: Iterable[str]) -> str | None:
    suffix = _LIST_INDEX.sub("[]", relative)
    suffix = suffix if suffix.startswith("[") else f".{suffix}"
    candidates = {path for path in template_paths if path.endswith(suffix)}
    if len(candidates) != 1:
        return None
    candidate = candidates.pop()
    parent_path = candidate[: -len(suffix)]
    if "[" not in parent_path:  # when the parent is reachable, it must hold the value the lookup was on
        value = _value_at(row, parent_path)
        if value is missing or type(value) is not type(parent) or value != parent:
            return None
    return candidate


def missing_variable_path(undefined: RowUndefined, row: Mapping[str, Any],
                          template_paths: Iterable[str] = ()) -> str | None:
    """The fullest row path we can name for a missing value, or None when it is not in the row.

    Lookups on a missing value chain, so the path below the last existing value is known exactly.
    The path of that last value is found by identity in the row (exact, with list indexes; only for
    containers), else from the template's own variable paths when only one of them fits and the row
    holds that value there (``x.y.z`` when x is 1). A lookup on a template's own value (a loop
    counter, a ``set`` local) has no row path: None, so no column is named that was not read.
    """
    relative = undefined._relative_path
    parent_value = undefined._undefined_obj
    if parent_value is missing:
        return relative
    parent = _find_in_row(row, parent_value)
    if parent is None:
        return _only_path_ending_with(relative, parent_value, row, template_paths)
    return parent + relative if relative.startswith("[") else f"{parent}.{relative}"


# --- runtime: only data is printed -----------------------------------------------------------------

_DATA_TYPES = (str, int, float, complex, Decimal, Fraction, dt.date, dt.time, dt.timedelta, UUID)
# Exact types of nearly every value a template prints: one set lookup, before any isinstance.
PLAIN_TYPES = frozenset({str, Markup, int, float, bool, type(None), Decimal, dt.date, dt.datetime})
_CONTAINER_TYPES = (list, tuple, set, frozenset, MappingView)  # MappingView: d.items(), d.values()
ITERATOR_TYPES = (range, Iterator, GeneratorType)
TICK_EVERY_VALUES = 10_000  # how often a long check calls back (the engine checks its deadline)


def _not_a_value(value: Any) -> ExpressionError:
    name = getattr(value, "__name__", None) or (getattr(value, "name", None) if callable(value) else None)
    name = name if isinstance(name, str) else None
    owner = getattr(value, "__self__", None)
    if isinstance(value, type):
        problem = f"{name!r} is a type, not a value"
    elif isinstance(value, ModuleType):
        problem = f"{name!r} is a module, not a value"
    elif owner is not None and not isinstance(owner, ModuleType) and name:
        problem = f"{name!r} is a method of {type(owner).__name__}, not a value; to call it, write {name}()"
    elif callable(value) and name:
        problem = f"{name!r} is a function, not a value; to call it, write {name}(…)"
    elif isinstance(value, ITERATOR_TYPES):
        problem = (f"a {type(value).__name__} (from range() or a filter such as map or select) is not a value; "
                   "add | list or | join(', ')")
    else:
        problem = f"a {type(value).__name__} is a template object, not a value"
    return ExpressionError(f"{problem} (only row data, numbers, text and dates can be printed)",
                           value=type(value).__name__)


def _is_leaky(value: Any) -> bool:
    """Callables, types, modules, iterators and objects whose text is Python's ``<… at 0x…>``."""
    if callable(value) or isinstance(value, (type, ModuleType, *ITERATOR_TYPES)):
        return True
    cls = type(value)
    return cls.__str__ is object.__str__ and cls.__repr__ is object.__repr__ or cls.__module__.startswith("jinja2")


def mapping_method_as_missing(value: Any) -> Any:
    """``order.items`` on a row without an ``items`` key finds ``dict.items``: that is a missing key.

    Returns a missing value for its path, or ``value`` unchanged for anything else.
    """
    owner = getattr(value, "__self__", None)
    name = getattr(value, "__name__", None)
    if isinstance(owner, Mapping) and isinstance(name, str) and callable(value) and name not in owner:
        return RowUndefined(obj=owner, name=name)
    return value


def check_printable(value: Any, tick: Callable[[], None] | None = None) -> None:
    """Raise ExpressionError unless ``value`` is data: text, numbers, dates, missing values and
    containers of them, however large or deeply nested.

    Called wherever the sandbox turns a value into text (output, ``~``, ``%``, ``str.format``,
    text filters), since Python's text of a function, type or template object holds its memory
    address. There is no budget: making the text costs as much as this walk, which visits each
    container once (shared or cyclic containers cannot make it loop) and calls ``tick`` every
    :data:`TICK_EVERY_VALUES` values so the render's deadline still holds.
    """
    if type(value) in PLAIN_TYPES:
        return
    pending = [value]
    seen: dict[int, Any] = {}  # holds what it saw: a freed view item's id could come back
    counted = 0
    while pending:
        item = pending.pop()
        if isinstance(item, (*_DATA_TYPES, jinja2.Undefined)) or item is None:
            continue
        if not isinstance(item, (Mapping, *_CONTAINER_TYPES)):
            if _is_leaky(item):
                raise _not_a_value(item)
            continue
        if id(item) in seen:
            continue
        seen[id(item)] = item
        for child in (part for pair in item.items() for part in pair) if isinstance(item, Mapping) else item:
            if type(child) not in PLAIN_TYPES:
                pending.append(child)
            counted += 1
            if counted == TICK_EVERY_VALUES:
                counted = 0
                if tick is not None:
                    tick()


def check_output_value(value: Any, tick: Callable[[], None] | None = None) -> Any:
    """What ``{{ … }}`` and ``~`` print: data only (see :func:`check_printable`).

    A dict method reached through a missing key becomes a missing value (missing_variable in strict
    mode, empty in lenient mode); any other function, type, module, iterator or template object is
    an ExpressionError instead of its Python repr, which would leak internals and addresses.
    """
    if type(value) in PLAIN_TYPES:
        return value
    value = mapping_method_as_missing(value)
    check_printable(value, tick)
    return value
