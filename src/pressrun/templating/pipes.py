"""Template rewrites applied before code generation: pipe precedence (source) and runtime guards (tree).

Pipe precedence: inside ``{{ … }}`` the first top-level ``|`` applies to everything before it.

Plain Jinja binds a filter tighter than any operator, so ``{{ price * 0.9 | currency }}`` formats
``0.9`` and then multiplies a string. Template authors coming from spreadsheet-style tools expect the
product to be formatted, so before parsing we rewrite the source to ``{{ (price * 0.9) | currency }}``.

The rewrite walks Jinja's own lexer tokens, so ``|`` inside strings, comments, ``{% raw %}`` blocks,
brackets and ``{% … %}`` statements is left alone. It only inserts ``(`` and ``)`` characters, never a
newline, so every line number Jinja reports afterwards is still a line of the original template.

Runtime guards (:class:`RuntimeGuards`) edit the parsed tree so the sandbox can check its budget in
every loop and on ``~``, and so a row column named like a function (``date``) cannot shadow it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from jinja2 import Environment, nodes
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

    Raises ``jinja2.TemplateSyntaxError`` for errors the lexer finds (unclosed strings or blocks),
    with the line number of the original source.
    """
    text = normalize_newlines(source)
    insertions: list[tuple[int, str]] = []
    expression: list[_Token] | None = None
    for token in _tokens_with_offsets(text, env, name):
        token_type = token[2]
        if token_type == "variable_begin":
            expression = []
        elif token_type == "variable_end" and expression is not None:
            insertions.extend(_parenthesize_before_pipe(expression))
            expression = None
        elif expression is not None and token_type != "whitespace":
            expression.append(token)
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


def _parenthesize_before_pipe(expression: list[_Token]) -> list[tuple[int, str]]:
    depth = 0
    for index, (_start, _end, token_type, value) in enumerate(expression):
        if token_type != "operator":
            continue
        if value in _OPENING_BRACKETS:
            depth += 1
        elif value in _CLOSING_BRACKETS:
            depth -= 1
        elif value == "|" and depth == 0:
            if index == 0:  # ``{{ | f }}`` stays a syntax error
                return []
            return [(expression[0][0], "("), (expression[index - 1][1], ")")]
    return []


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
