"""Checking a syntax tree against the language (names, arities, scopes, state) and compiling it
to an evaluable `Program`; message templates with `{expression:spec}` holes."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from rlhf_tui.rules.language.evaluate import (
    Apply,
    Arithmetic,
    Compare,
    Const,
    CountPoints,
    Either,
    Expr,
    Extreme,
    Fact,
    FeatureRef,
    ForPoints,
    Frame,
    Logical,
    Not,
    PointVariable,
    Program,
    RunVariable,
    Stateful,
)
from rlhf_tui.rules.language.syntax import (
    COMPARISONS,
    CONSTANTS,
    FACTS,
    MAX_WINDOW,
    POINT_VARIABLES,
    ROLES,
    RUN_VARIABLES,
    STATEFUL_FUNCTIONS,
    WINDOW_FUNCTIONS,
    Binary,
    Call,
    ConditionError,
    For,
    Name,
    Number,
    Unary,
    parse,
)
from rlhf_tui.rules.language.windows import Feature


class _Compiler:
    def __init__(self, params: Mapping[str, float], scope: str, allow_state: bool) -> None:
        self.params = params
        self.scope = scope
        self.allow_state = allow_state
        self.roles: list[str] = []
        self.features: set[Feature] = set()
        self.stateful: list[Stateful] = []

    def compile(self, node) -> Expr:
        if isinstance(node, Number):
            return Const(node.value)
        if isinstance(node, Name):
            return self.name(node)
        if isinstance(node, Unary):
            operand = self.compile(node.operand)
            if node.op == "not":
                return Not(self.boolean(operand, node))
            return Apply("-", self.number(operand, node))
        if isinstance(node, Binary):
            left, right = self.compile(node.left), self.compile(node.right)
            if node.op in ("and", "or"):
                return Logical(node.op, self.boolean(left, node), self.boolean(right, node))
            left, right = self.number(left, node), self.number(right, node)
            if node.op in COMPARISONS:
                return Compare(node.op, left, right)
            return Arithmetic(node.op, left, right)
        if isinstance(node, For):
            self.require_state("for", node)
            condition = self.boolean(self.compile(node.condition), node)
            return self.remember(ForPoints(condition, self.count(node.count, "for")))
        return self.call(node)

    def number(self, expr: Expr, node) -> Expr:
        if expr.kind != "number":
            raise ConditionError("expected a number here, found a condition", node.column)
        return expr

    def boolean(self, expr: Expr, node) -> Expr:
        if expr.kind != "boolean":
            raise ConditionError("expected a condition here (a comparison), found a number", node.column)
        return expr

    def remember(self, node: Stateful) -> Stateful:
        self.stateful.append(node)
        return node

    def require_state(self, what: str, node) -> None:
        if not self.allow_state:
            raise ConditionError(f"{what!r} keeps state and is only allowed in conditions", node.column)

    def name(self, node: Name) -> Expr:
        name = node.name
        if name in self.params:
            return Const(float(self.params[name]))
        if name in CONSTANTS:
            return Const(CONSTANTS[name])
        if name in FACTS or name.startswith("config."):
            return Fact(name)
        if name in POINT_VARIABLES and self.scope == "points":
            return PointVariable(name)
        if name in RUN_VARIABLES and self.scope == "run":
            return RunVariable(name)
        if name in ROLES and self.scope == "points":
            return FeatureRef(self.feature("last", name))
        raise ConditionError(f"unknown name {name!r}", node.column)

    def feature(self, kind: str, role: str, window: int = 1, lag: int = 0) -> Feature:
        if role not in self.roles:
            self.roles.append(role)
        feature = Feature(kind, role, window, lag)
        self.features.add(feature)
        return feature

    def count(self, node, what: str, minimum: int = 1) -> int:
        if isinstance(node, Number):
            value = node.value
        elif isinstance(node, Name) and node.name in self.params:
            value = float(self.params[node.name])
        else:
            raise ConditionError(f"{what} needs a whole number (a literal or a param)", node.column)
        if not (minimum <= value <= MAX_WINDOW and value == int(value)):
            wanted = f"a whole number from {minimum} to {MAX_WINDOW}"
            raise ConditionError(f"{what} needs {wanted}, got {value:g}", node.column)
        return int(value)

    def role(self, node, function: str) -> str:
        if self.scope != "points":
            raise ConditionError(f"{function}() reads metrics; not allowed in a run-scope rule", node.column)
        if not isinstance(node, Name) or node.name not in ROLES:
            found = node.name if isinstance(node, Name) else "an expression"
            raise ConditionError(f"{function}() needs a metric role first, got {found}", node.column)
        return node.name

    def arity(self, node: Call, low: int, high: int) -> None:
        if not low <= len(node.args) <= high:
            wanted = str(low) if low == high else f"{low} to {high}"
            raise ConditionError(f"{node.function}() takes {wanted} arguments, got {len(node.args)}", node.column)

    def call(self, node: Call) -> Expr:
        function, args = node.function, node.args
        if function in ("abs", "sqrt", "exp", "log"):
            self.arity(node, 1, 1)
            return Apply(function, self.number(self.compile(args[0]), node))
        if function == "either":
            self.arity(node, 2, 2)
            return Either(self.number(self.compile(args[0]), node), self.number(self.compile(args[1]), node))
        if function in STATEFUL_FUNCTIONS:
            self.require_state(function, node)
            if function == "count":
                self.arity(node, 2, 2)
                condition = self.boolean(self.compile(args[0]), node)
                return self.remember(CountPoints(condition, self.count(args[1], "count() window")))
            self.arity(node, 1, 1)
            return self.remember(Extreme(self.number(self.compile(args[0]), node), function))
        if function == "last":
            self.arity(node, 1, 2)
            lag = self.count(args[1], "last() lag", 0) if len(args) == 2 else 0
            return FeatureRef(self.feature("last", self.role(args[0], function), 1, lag))
        if function in WINDOW_FUNCTIONS:
            self.arity(node, 2, 3)
            role = self.role(args[0], function)
            window = self.count(args[1], f"{function}() window", 2 if function in ("std", "slope") else 1)
            lag = self.count(args[2], f"{function}() lag", 0) if len(args) == 3 else 0
            if function == "slope":
                half = window // 2
                newer = FeatureRef(self.feature("mean", role, half, lag))
                older = FeatureRef(self.feature("mean", role, half, lag + half))
                return Arithmetic("/", Arithmetic("-", newer, older), Const(float(half)))
            return FeatureRef(self.feature(function, role, window, lag))
        if function == "baseline":
            self.arity(node, 2, 2)
            role = self.role(args[0], function)
            return FeatureRef(self.feature("baseline", role, self.count(args[1], "baseline() points")))
        if function in ("drop", "rise"):
            self.arity(node, 3, 3)
            role = self.role(args[0], function)
            recent = FeatureRef(self.feature("mean", role, self.count(args[1], f"{function}() window")))
            base = FeatureRef(self.feature("baseline", role, self.count(args[2], f"{function}() baseline")))
            change = Arithmetic("-", base, recent) if function == "drop" else Arithmetic("-", recent, base)
            return Arithmetic("/", change, Apply("abs", base))
        if function in ("spike", "zscore"):
            self.arity(node, 2, 2)
            role = self.role(args[0], function)
            window = self.count(args[1], f"{function}() window", 2)
            current = FeatureRef(self.feature("last", role))
            before = FeatureRef(self.feature("mean", role, window, 1))
            if function == "spike":
                return Arithmetic("/", current, before)
            spread = FeatureRef(self.feature("std", role, window, 1))
            return Arithmetic("/", Arithmetic("-", current, before), spread)
        if function == "nonfinite":
            self.arity(node, 1, 2)
            window = self.count(args[1], "nonfinite() window") if len(args) == 2 else 1
            return FeatureRef(self.feature("nonfinite", self.role(args[0], function), window))
        raise ConditionError(f"unknown function {function!r}", node.column)


def compile_expression(
    text: str,
    params: Mapping[str, float] | None = None,
    *,
    scope: str = "points",
    kind: str | None = None,
    allow_state: bool = True,
) -> Program:
    """Parse and check `text`.

    scope: "points" (evaluated at every point of a clock role) or "run" (once per update, over run
    variables). kind: "boolean" or "number" to require one. allow_state: False for messages and
    values, which are evaluated only at the points where they are shown.
    """
    compiler = _Compiler(params or {}, scope, allow_state)
    expr = compiler.compile(parse(text))
    if kind is not None and expr.kind != kind:
        wanted = "a condition (a comparison)" if kind == "boolean" else "a number"
        raise ConditionError(f"expected {wanted}")
    for slot, node in enumerate(compiler.stateful):
        node.slot = slot
    return Program(expr, tuple(compiler.roles), frozenset(compiler.features), tuple(compiler.stateful))



# ---------------------------------------------------------------------------------------------
# Message templates

_FORMAT_SPEC = re.compile(r"\.\d{1,2}[fge%]|\d*d|")


@dataclass
class Template:
    """A message with `{expression}` or `{expression:.3f}` placeholders; `{{` and `}}` are braces.

    Allowed format specs: `.Nf`, `.Ng`, `.Ne`, `.N%` and `d` (whole numbers).
    """

    parts: tuple  # str or (Program, format spec)

    @property
    def programs(self) -> tuple[Program, ...]:
        return tuple(part[0] for part in self.parts if not isinstance(part, str))

    def render(self, frame: Frame) -> str:
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            program, spec = part
            value = float(program.evaluate(frame)[0])
            out.append(format_value(value, spec))
        return "".join(out)


def format_value(value: float, spec: str) -> str:
    if not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if spec.endswith("d"):
        return format(int(round(value)), spec)
    return format(value, spec or ".4g")


def compile_template(text: str, params: Mapping[str, float] | None = None, *, scope: str = "points") -> Template:
    parts: list = []
    literal: list[str] = []
    position = 0
    while position < len(text):
        char = text[position]
        if text.startswith("{{", position) or text.startswith("}}", position):
            literal.append(char)
            position += 2
            continue
        if char == "}":
            raise ConditionError("unmatched '}' in message", position + 1)
        if char != "{":
            literal.append(char)
            position += 1
            continue
        end = text.find("}", position)
        if end < 0:
            raise ConditionError("unclosed '{' in message", position + 1)
        body = text[position + 1 : end]
        expression, _, spec = body.partition(":")
        if not _FORMAT_SPEC.fullmatch(spec):
            raise ConditionError(f"format {spec!r} not allowed (use .2f, .3g, .1%, d)", position + 1)
        try:
            program = compile_expression(expression, params, scope=scope, kind="number", allow_state=False)
        except ConditionError as error:
            column = position + 1 + (error.column or 1)  # the column in the message text
            raise ConditionError(f"in {{{body}}}: {error.reason}", column) from None
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append((program, spec))
        position = end + 1
    if literal:
        parts.append("".join(literal))
    return Template(tuple(parts))
