"""The text of a condition: tokens, the syntax tree, the recursive-descent parser, and the
names the language knows (roles, facts, variables, limits)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from rlhf_tui.core.metrics import ROLES as METRIC_ROLES

CONSTANTS = {"ln2": math.log(2.0), "e": math.e, "pi": math.pi}

FACTS = frozenset(
    {
        "beta",
        "batch_size",
        "logging_steps",
        "max_steps",
        "lr_warmup_steps",
        "no_signal_loss",
        "num_generations",
        "max_completion_length",
    }
)

POINT_VARIABLES = frozenset({"step", "points", "progress"})
RUN_VARIABLES = frozenset({"stalled_for", "last_step"})

TRAIN_ROLES = frozenset(METRIC_ROLES)
ROLES = TRAIN_ROLES | {f"eval_{role}" for role in TRAIN_ROLES}

_KEYWORDS = frozenset({"and", "or", "not", "for"})
MAX_NESTING = 64  # parentheses, unary minus and `not` nested deeper are refused, not recursed into
MAX_DEPTH = 200  # syntax-tree depth (long operator chains nest too); checking and evaluation recurse
MAX_WINDOW = 100_000  # points: a window's state is O(window) per run
COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")
WINDOW_FUNCTIONS = frozenset({"mean", "min", "max", "std", "slope"})
STATEFUL_FUNCTIONS = frozenset({"count", "highest", "lowest"})


class ConditionError(ValueError):
    """A condition or template that does not parse or check; `column` is 1-based when known."""

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message if column is None else f"{message} (column {column})")
        self.reason = message
        self.column = column



_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op><=|>=|==|!=|[<>+\-*/(),])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # "number", "name", "keyword", "op", "end"
    text: str
    column: int


def tokenize(text: str) -> list[Token]:
    tokens = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ConditionError(f"unexpected character {text[position]!r}", position + 1)
        kind = match.lastgroup
        if kind is not None and kind != "space":
            word = match.group()
            if kind == "name" and word in _KEYWORDS:
                kind = "keyword"
            tokens.append(Token(kind, word, position + 1))
        position = match.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


@dataclass(frozen=True)
class Number:
    value: float
    column: int


@dataclass(frozen=True)
class Name:
    name: str
    column: int


@dataclass(frozen=True)
class Call:
    function: str
    args: tuple
    column: int


@dataclass(frozen=True)
class Unary:
    op: str  # "-" or "not"
    operand: object
    column: int


@dataclass(frozen=True)
class Binary:
    op: str  # arithmetic, comparison, "and", "or"
    left: object
    right: object
    column: int


@dataclass(frozen=True)
class For:
    condition: object
    count: object  # Number or Name
    column: int


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0

    def nested(self, column: int) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise ConditionError(f"expression nested more than {MAX_NESTING} levels deep", column)

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def accept(self, text: str) -> Token | None:
        if self.token.text == text and self.token.kind in ("op", "keyword"):
            return self.take()
        return None

    def expect(self, text: str) -> Token:
        token = self.accept(text)
        if token is None:
            raise ConditionError(f"expected {text!r}, found {self.describe(self.token)}", self.token.column)
        return token

    @staticmethod
    def describe(token: Token) -> str:
        return "end of text" if token.kind == "end" else repr(token.text)

    def parse(self):
        node = self.condition()
        if self.token.kind != "end":
            raise ConditionError(f"unexpected {self.describe(self.token)}", self.token.column)
        return node

    def condition(self):
        self.nested(self.token.column)
        node = self.disjunction()
        self.depth -= 1
        keyword = self.accept("for")
        if keyword is not None:
            token = self.take()
            count: Number | Name
            if token.kind == "number":
                count = Number(float(token.text), token.column)
            elif token.kind == "name":
                count = Name(token.text, token.column)
            else:
                raise ConditionError("'for' needs a number of points", token.column)
            node = For(node, count, keyword.column)
        return node

    def disjunction(self):
        node = self.conjunction()
        while (token := self.accept("or")) is not None:
            node = Binary("or", node, self.conjunction(), token.column)
        return node

    def conjunction(self):
        node = self.negation()
        while (token := self.accept("and")) is not None:
            node = Binary("and", node, self.negation(), token.column)
        return node

    def negation(self):
        token = self.accept("not")
        if token is not None:
            self.nested(token.column)
            node = Unary("not", self.negation(), token.column)
            self.depth -= 1
            return node
        return self.comparison()

    def comparison(self):
        node = self.sum()
        if self.token.kind == "op" and self.token.text in COMPARISONS:
            token = self.take()
            node = Binary(token.text, node, self.sum(), token.column)
            if self.token.kind == "op" and self.token.text in COMPARISONS:
                raise ConditionError("chained comparisons are not supported; use 'and'", self.token.column)
        return node

    def sum(self):
        node = self.term()
        while self.token.kind == "op" and self.token.text in ("+", "-"):
            token = self.take()
            node = Binary(token.text, node, self.term(), token.column)
        return node

    def term(self):
        node = self.factor()
        while self.token.kind == "op" and self.token.text in ("*", "/"):
            token = self.take()
            node = Binary(token.text, node, self.factor(), token.column)
        return node

    def factor(self):
        token = self.token
        if self.accept("-") is not None:
            self.nested(token.column)
            node = Unary("-", self.factor(), token.column)
            self.depth -= 1
            return node
        if token.kind == "number":
            self.take()
            return Number(float(token.text), token.column)
        if token.kind == "name":
            self.take()
            if self.accept("(") is None:
                return Name(token.text, token.column)
            args = []
            if self.accept(")") is None:
                args.append(self.condition())
                while self.accept(",") is not None:
                    args.append(self.condition())
                self.expect(")")
            return Call(token.text, tuple(args), token.column)
        if self.accept("(") is not None:
            node = self.condition()
            self.expect(")")
            return node
        raise ConditionError(f"unexpected {self.describe(token)}", token.column)


def parse(text: str):
    """The syntax tree of a condition or expression; raises ConditionError."""
    tree = _Parser(text).parse()
    deepest, pending = 0, [(tree, 1)]
    while pending:
        node, depth = pending.pop()
        deepest = max(deepest, depth)
        if isinstance(node, Unary):
            pending.append((node.operand, depth + 1))
        elif isinstance(node, Binary):
            pending.extend(((node.left, depth + 1), (node.right, depth + 1)))
        elif isinstance(node, Call):
            pending.extend((arg, depth + 1) for arg in node.args)
        elif isinstance(node, For):
            pending.append((node.condition, depth + 1))
    if deepest > MAX_DEPTH:
        raise ConditionError(f"expression too long: its syntax tree is more than {MAX_DEPTH} levels deep")
    return tree
