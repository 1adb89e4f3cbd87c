"""Template rewrites applied before code generation: pipe precedence (source), compile limits and
runtime guards (tree).

Pipe precedence: inside ``{{ … }}`` and in the value of ``{% set name = … %}``, a trailing run of
filters applies to everything before it.

Plain Jinja binds a filter tighter than any operator, so ``{{ price * 0.9 | currency }}`` formats
``0.9`` and then multiplies a string. Template authors coming from spreadsheet-style tools expect the
product to be formatted. The rule: find the longest suffix of the expression made only of top-level
``| name`` or ``| name(arguments)`` segments, and put everything before that suffix in parentheses::

    {{ price * 0.9 | currency }}                    ->  {{ (price * 0.9) | currency }}
    {{ items | map(attribute='p') | sum * 1.2 | currency }}
                                                    ->  {{ (items | map(attribute='p') | sum * 1.2) | currency }}
    {{ 'many' if items | length > 1 else 'one' }}   ->  unchanged (no filter suffix: plain Jinja)

A segment with anything after its name or argument list (``| length > 1``, ``| sum * 1.2``) ends
the suffix, so filters in the middle of an expression keep Jinja's precedence. ``{% if %}``,
``{% for %}`` and other statements keep Jinja's precedence throughout.

The rewrite walks Jinja's own lexer tokens, so ``|`` inside strings, comments, ``{% raw %}`` blocks
and brackets is left alone. It only inserts ``(`` and ``)`` characters, never a newline, so every
line number Jinja reports afterwards is still a line of the original template.

Compile limits keep compiling fast and its errors ours. Before parsing, while the pipe rewrite walks
the lexer tokens: at most :data:`MAX_TEMPLATE_TOKENS` tokens inside tags and :data:`MAX_ELIFS`
``{% elif %}`` in one ``{% if %}`` (the engine also caps the source at ``MAX_TEMPLATE_CHARS``).
After parsing (:func:`check_compile_limits`): expressions and blocks nested so deeply that Python's
compiler would fail on (or take seconds over) the generated code.

Runtime guards (:class:`RuntimeGuards`) edit the parsed tree so the sandbox can check its budget in
every loop and on ``~``, and so a row column named like a function (``date``) cannot shadow it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from jinja2 import Environment, TemplateSyntaxError, nodes
from jinja2.visitor import NodeTransformer

_OPENING_BRACKETS = frozenset("([{")
_CLOSING_BRACKETS = frozenset(")]}")
_NEWLINES = re.compile(r"\r\n|\r")
# Filters the engine registers for the guards; a template cannot spell these names itself.
GUARD_ITERABLE_FILTER = "pressrun:guard_iterable"
CONCAT_FILTER = "pressrun:concat"

# (start offset, end offset, token type, token text) in the newline-normalised source.
_Token = tuple[int, int, str, str]


def normalize_newlines(source: str) -> str:
    """What Jinja's lexer does anyway; doing it first keeps token offsets aligned with the source."""
    return _NEWLINES.sub("\n", source)


def rewrite_pipes(source: str, env: Environment, *, name: str | None = None) -> str:
    """Return ``source`` (newlines normalised) with each ``{{ a op b | f }}`` made ``{{ (a op b) | f }}``.

    The same applies to ``{% set x = a op b | f %}``. Raises ``jinja2.TemplateSyntaxError`` for
    errors the lexer finds (unclosed strings or blocks), with the line number of the original source,
    and for templates over :data:`MAX_TEMPLATE_TOKENS` or :data:`MAX_ELIFS`, as soon as the lexer
    reaches the token past the limit.
    """
    text = normalize_newlines(source)
    insertions: list[tuple[int, str]] = []
    tag: list[_Token] | None = None
    limits = _TokenLimits(text, name)
    for token in _tokens_with_offsets(text, env, name):
        token_type = token[2]
        limits.count(token, tag)
        if token_type in ("variable_begin", "block_begin"):
            tag = []
        elif token_type == "variable_end" and tag is not None:
            insertions.extend(_parenthesize_before_filters(tag))
            tag = None
        elif token_type == "block_end" and tag is not None:
            insertions.extend(_parenthesize_before_filters(_set_value(tag)))
            tag = None
        elif tag is not None and token_type != "whitespace":
            tag.append(token)
    return _insert(text, insertions)


def _tokens_with_offsets(text: str, env: Environment, name: str | None) -> Iterator[_Token]:
    # The lexer yields token texts without offsets. Each text is a verbatim slice of the source that
    # starts where the previous one ended, except after whitespace control (``{{-``) trimmed the
    # end of a data token, so searching forward from the cursor recovers the offsets.
    cursor = 0
    for _line, token_type, value in env.lexer.tokeniter(text, name):
        start = text.find(value, cursor)
        if start < 0:  # cannot happen with the default lexer settings; stay safe anyway
            start = cursor
        cursor = start + len(value)
        yield start, cursor, token_type, value


def _set_value(statement: list[_Token]) -> list[_Token]:
    """The tokens after ``=`` in ``{% set target = value %}``; empty for any other statement."""
    if not statement or statement[0][2:] != ("name", "set"):
        return []
    for index, (_start, _end, token_type, value) in enumerate(statement):
        if token_type == "operator" and value == "=":
            return statement[index + 1 :]
    return []  # ``{% set x %}…{% endset %}``: a block assignment, no expression


def _top_level_pipes(expression: list[_Token]) -> list[int]:
    pipes: list[int] = []
    depth = 0
    for index, (_start, _end, token_type, value) in enumerate(expression):
        if token_type != "operator":
            continue
        if value in _OPENING_BRACKETS:
            depth += 1
        elif value in _CLOSING_BRACKETS:
            depth -= 1
        elif value == "|" and depth == 0:
            pipes.append(index)
    return pipes


def _is_filter_call(segment: list[_Token]) -> bool:
    """``name`` or ``name(…)`` and nothing else (the tokens between two top-level pipes)."""
    if not segment or segment[0][2] != "name":
        return False
    if len(segment) == 1:
        return True
    if segment[1][2:] != ("operator", "("):
        return False
    depth = 0
    for index, (_start, _end, token_type, value) in enumerate(segment[1:], start=1):
        if token_type == "operator" and value in _OPENING_BRACKETS:
            depth += 1
        elif token_type == "operator" and value in _CLOSING_BRACKETS:
            depth -= 1
            if depth == 0:
                return index == len(segment) - 1
    return False


def _parenthesize_before_filters(expression: list[_Token]) -> list[tuple[int, str]]:
    pipes = _top_level_pipes(expression)
    suffix_start: int | None = None
    segment_end = len(expression)
    for pipe in reversed(pipes):
        if not _is_filter_call(expression[pipe + 1 : segment_end]):
            break
        suffix_start, segment_end = pipe, pipe
    if not suffix_start:  # no filter suffix, or ``{{ | f }}`` (stays a syntax error, not an empty tuple)
        return []
    return [(expression[0][0], "("), (expression[suffix_start - 1][1], ")")]


def _insert(text: str, insertions: list[tuple[int, str]]) -> str:
    if not insertions:
        return text
    pieces: list[str] = []
    cursor = 0
    for offset, inserted in sorted(insertions):
        pieces.append(text[cursor:offset])
        pieces.append(inserted)
        cursor = offset
    pieces.append(text[cursor:])
    return "".join(pieces)


# --- compile limits ---------------------------------------------------------------------------

# Compiling costs up to about 50 µs a tag token (10,000 ``{{ a }}``, 20,000 tokens: 0.9 s), so the
# largest template accepted compiles in about a second and a larger one is refused in milliseconds.
MAX_TEMPLATE_TOKENS = 20_000  # names, operators and literals inside {{ }} and {% %}, before parsing
MAX_ELIFS = 1_000  # {% elif %} in one {% if %}; Python's compiler fails past about 2,500


class _TokenLimits:
    """Counts tag tokens and each open ``{% if %}``'s elifs while the lexer runs, before parsing."""

    def __init__(self, text: str, name: str | None) -> None:
        self.text, self.name = text, name
        self.tokens = 0
        self.elifs_of_open_ifs: list[int] = []

    def count(self, token: _Token, tag: list[_Token] | None) -> None:
        if tag is None or token[2] == "whitespace":  # template text between tags is one cheap token
            return
        self.tokens += 1
        if self.tokens > MAX_TEMPLATE_TOKENS:
            self.fail(token, f"the template has more than {MAX_TEMPLATE_TOKENS} names, operators and values "
                             "in its tags; split it into smaller templates")
        if tag or token[2] != "name":  # only the first word of a tag says which statement it is
            return
        keyword = token[3]
        if keyword == "if":
            self.elifs_of_open_ifs.append(0)
        elif keyword == "endif" and self.elifs_of_open_ifs:
            self.elifs_of_open_ifs.pop()
        elif keyword == "elif" and self.elifs_of_open_ifs:
            self.elifs_of_open_ifs[-1] += 1
            if self.elifs_of_open_ifs[-1] > MAX_ELIFS:
                self.fail(token, f"an {{% if %}} has more than {MAX_ELIFS} {{% elif %}}; look the value up "
                                 "in a mapping instead ({% set labels = {'a': 'A', 'b': 'B'} %}{{ labels[x] }})")

    def fail(self, token: _Token, message: str) -> None:
        raise TemplateSyntaxError(message, self.text.count("\n", 0, token[0]) + 1, self.name)


MAX_EXPRESSION_DEPTH = 30  # filters, lookups, operators and brackets nested in one expression
MAX_BLOCK_DEPTH = 20  # {% for %}, {% if %}, {% macro %}… inside one another (Python's own limit is 20)
_BLOCK_NODES = (nodes.For, nodes.If, nodes.Macro, nodes.CallBlock, nodes.FilterBlock, nodes.With,
                nodes.AssignBlock, nodes.Block, nodes.Scope, nodes.ScopedEvalContextModifier)


def check_compile_limits(ast: nodes.Template, name: str | None = None) -> None:
    """Refuse a parsed template that nests beyond the limits, before code generation.

    Python's compiler fails on deeply nested generated code ("too many statically nested blocks")
    and takes seconds over a long filter chain; these limits keep compiling fast and its errors ours.
    Raises ``jinja2.TemplateSyntaxError`` at the line of the offending node.
    """
    pending: list[tuple[nodes.Node, int, int]] = [(ast, 0, 0)]  # (node, expression depth, block depth)
    while pending:
        node, expression_depth, block_depth = pending.pop()
        if isinstance(node, nodes.Expr):
            expression_depth += 1
            if expression_depth > MAX_EXPRESSION_DEPTH:
                raise TemplateSyntaxError(
                    f"an expression is nested more than {MAX_EXPRESSION_DEPTH} levels deep (filters, "
                    f"lookups, operators and brackets inside one another); split it with {{% set %}}",
                    node.lineno, name)
        else:
            expression_depth = 0
        if isinstance(node, _BLOCK_NODES):
            block_depth += 1
            if block_depth > MAX_BLOCK_DEPTH:
                raise TemplateSyntaxError(
                    f"blocks are nested more than {MAX_BLOCK_DEPTH} deep ({{% for %}}, {{% if %}}, "
                    f"{{% macro %}}… inside one another); move inner parts into macros",
                    node.lineno, name)
        # An elif is an If node inside its if, one block deep, not nested.
        elif_ids = {id(elif_) for elif_ in node.elif_} if isinstance(node, nodes.If) and node.elif_ else ()
        for child in node.iter_child_nodes():
            child_block_depth = block_depth - 1 if id(child) in elif_ids else block_depth
            pending.append((child, expression_depth, child_block_depth))


# --- runtime guards ---------------------------------------------------------------------------


class RuntimeGuards(NodeTransformer):
    """Syntax-tree edits: deadline checks in every loop, a size check on ``~``, and global functions
    that a row column of the same name (``date``, ``number``) cannot shadow."""

    def __init__(self, unshadowed_functions: frozenset[str]) -> None:
        self.unshadowed_functions = unshadowed_functions

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, GUARD_ITERABLE_FILTER, [], [], None, None, lineno=node.iter.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        joined = nodes.List(node.nodes, lineno=node.lineno)
        return nodes.Filter(joined, CONCAT_FILTER, [], [], None, None, lineno=node.lineno)

    def visit_Call(self, node: nodes.Call) -> nodes.Node:
        self.generic_visit(node)
        callee = node.node
        if isinstance(callee, nodes.Name) and callee.name in self.unshadowed_functions:
            functions = nodes.EnvironmentAttribute("functions", lineno=callee.lineno)
            function_name = nodes.Const(callee.name, lineno=callee.lineno)
            node.node = nodes.Getitem(functions, function_name, "load", lineno=callee.lineno)
        return node


def locally_bound_names(ast: nodes.Template) -> set[str]:
    """Names the template binds itself anywhere (set, for, macro, import...): these may shadow functions."""
    bound = {name.name for name in ast.find_all(nodes.Name) if name.ctx in ("store", "param")}
    bound.update(macro.name for macro in ast.find_all(nodes.Macro))
    bound.update(node.target for node in ast.find_all(nodes.Import))
    for node in ast.find_all(nodes.FromImport):
        bound.update(name[1] if isinstance(name, tuple) else name for name in node.names)
    return bound
