"""The condition language of diagnostic rules: tokenizer, parser, checker and vectorised evaluator.

Rules are data, so their conditions are text. This module turns that text into an expression tree
(a small tokenizer and a recursive-descent parser; nothing is ever `eval`ed) and evaluates the tree
over numpy arrays: one element per logged point of the rule's *clock* role, so a backlog of 10k
points is one pass, and one new point is a pass over arrays of length 1.

Grammar (lowest precedence first)::

    condition   := disjunction [ "for" COUNT ]        # held on COUNT consecutive points
    disjunction := conjunction ( "or" conjunction )*
    conjunction := negation ( "and" negation )*
    negation    := "not" negation | comparison
    comparison  := sum [ ( "<" | "<=" | ">" | ">=" | "==" | "!=" ) sum ]
    sum         := term ( ( "+" | "-" ) term )*
    term        := factor ( ( "*" | "/" ) factor )*
    factor      := "-" factor | NUMBER | NAME | NAME "(" arguments ")" | "(" condition ")"

Names:

- a metric role (`loss`, `win_rate`, `kl`, `eval_loss`, ...): its value at the current point;
- constants `ln2`, `e`, `pi`;
- run facts: `beta`, `batch_size` (per-device batch x gradient accumulation), `logging_steps`,
  `max_steps`, `lr_warmup_steps`, `no_signal_loss` (the loss of a preference trainer that has learnt
  nothing: ln 2 for sigmoid DPO, 1 for hinge, 1/(4 beta^2) for IPO, 0.5 for KTO, ...),
  `num_generations`, `max_completion_length`, and `config.<key>` for any numeric training argument;
- `step` (the current step), `points` (points of the clock role so far), `progress` (step / max_steps);
- in run-scope rules only: `stalled_for` (seconds without a new step, while stalled), `last_step`;
- a rule's own `params`, which is how users override thresholds.

Functions over a role (N, K and LAG are integer literals or params; windows count logged points):

- `last(role[, LAG])`: the value LAG points ago (NaN stays NaN);
- `mean`, `min`, `max`, `std` `(role, N[, LAG])`: over the N points ending LAG points ago;
- `slope(role, N[, LAG])`: change per point, (mean of the newer half - mean of the older half) / (N/2);
- `baseline(role, K)`: mean of the run's first K finite points (fixed once known);
- `drop(role, N, K)` / `rise(role, N, K)`: relative change of `mean(role, N)` below / above `baseline(role, K)`;
- `spike(role, N)`: the current value divided by the mean of the N points before it;
- `zscore(role, N)`: (current - mean of the N points before it) / their std;
- `nonfinite(role[, N])`: how many of the last N points (default 1) are NaN or Inf.

Functions over expressions: `abs(x)`, `sqrt(x)`, `exp(x)`, `log(x)`, `count(condition, N)` (points
among the last N where it held), `highest(x)` / `lowest(x)` (over the whole run so far). `count`,
`highest`, `lowest` and `for` keep state and are allowed in conditions only, not in messages or
values. Nesting is limited to MAX_NESTING levels and windows to MAX_WINDOW points.

Missing data is unknown, never false alarm: a window statistic is NaN until its window is full, NaN
and Inf points are skipped (and counted by `nonfinite`), a role the run does not log is NaN, and so is
an unknown fact. Comparisons with NaN are unknown, `and`/`or`/`not` follow three-valued logic
(`unknown and false` is false, `unknown or true` is true, `not unknown` is unknown), and a rule fires
only where its condition is definitely true.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

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
_COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")
_WINDOW_FUNCTIONS = frozenset({"mean", "min", "max", "std", "slope"})
_STATEFUL_FUNCTIONS = frozenset({"count", "highest", "lowest"})


class ConditionError(ValueError):
    """A condition or template that does not parse or check; `column` is 1-based when known."""

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message if column is None else f"{message} (column {column})")
        self.reason = message
        self.column = column


# ---------------------------------------------------------------------------------------------
# Tokens and syntax tree

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
        if self.token.kind == "op" and self.token.text in _COMPARISONS:
            token = self.take()
            node = Binary(token.text, node, self.sum(), token.column)
            if self.token.kind == "op" and self.token.text in _COMPARISONS:
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


# ---------------------------------------------------------------------------------------------
# Window features over one role, computed incrementally


class Feature(NamedTuple):
    """A statistic of one role at every point: kind is last, mean, std, min, max, baseline or nonfinite."""

    kind: str
    role: str
    window: int = 1
    lag: int = 0

    @property
    def lookback(self) -> int:
        """How many earlier points of the role this feature needs."""
        if self.kind == "baseline":
            return 0
        if self.kind == "last":
            return self.lag
        return self.window + self.lag - 1


class RoleWindow:
    """The incremental state of one role for all the features over it.

    State is O(longest window): running totals (count, sum, sum of squares of finite values,
    non-finite count) carried as prefix sums, the last few prefix sums and values, and the baseline
    accumulators. Totals are accumulated strictly in order (numpy's cumsum is sequential), so
    feeding the same points in any split gives bit-identical results. For consecutive points the
    window sums are differences of prefix-sum slices at fixed offsets, so one new point costs a
    fixed number of numpy calls per feature. Values are centered on the role's first finite value;
    a std from sums of squares loses relative precision only for spreads around 1e-6 of the
    values' distance from it.
    """

    def __init__(self, features: Iterable[Feature]) -> None:
        self.features = tuple(sorted(set(features), key=repr))
        self.keep = max((feature.lookback for feature in self.features), default=0)
        self.count = 0
        self.latest: dict[Feature, float] = dict.fromkeys(self.features, math.nan)
        self._center: float | None = None
        self._values = np.empty(0)
        self._baselines = {f: [0, 0.0, math.nan] for f in self.features if f.kind == "baseline"}
        self._summed = [f for f in self.features if f.kind in ("mean", "std", "nonfinite")]
        kinds = {f.kind for f in self._summed}
        # Running totals of finite points, their (centered) sum, their squares, non-finite points;
        # only the quantities some feature needs.
        self._quantities = ("count", "sum") + ("squares",) * ("std" in kinds) + ("bad",) * ("nonfinite" in kinds)
        # Prefix totals E[g] over points 0..g-1, one row per quantity, for the last keep + 1
        # values of g up to count. E[g] = 0 for g <= 0: the zero columns before the first point
        # make early windows partial sums (what nonfinite() wants; window statistics are masked).
        self._prefix = np.zeros((len(self._quantities), self.keep + 1))

    def advance(self, values: np.ndarray) -> dict[Feature, np.ndarray]:
        """Consume new points; return each feature's value at each of them."""
        with np.errstate(all="ignore"):
            return self._advance(np.asarray(values, dtype=np.float64))

    def _advance(self, values: np.ndarray) -> dict[Feature, np.ndarray]:
        m = len(values)
        first = self.count
        finite = np.isfinite(values)
        history = np.concatenate((self._values, values)) if self.keep else values
        history_origin = first - len(self._values)
        ends = np.arange(first, first + m)

        if self._summed:
            if self._center is None and finite.any():
                self._center = float(values[finite][0])
            center = self._center or 0.0
            centered = np.where(finite, values - center, 0.0)
            increments = np.empty((len(self._quantities), m + 1))
            increments[:, 0] = self._prefix[:, -1]
            increments[0, 1:] = finite
            increments[1, 1:] = centered
            if "squares" in self._quantities:
                increments[2, 1:] = centered * centered
            if "bad" in self._quantities:
                increments[-1, 1:] = ~finite
            prefix = np.concatenate((self._prefix, np.cumsum(increments, axis=1)[:, 1:]), axis=1)
            # Window sums are differences of prefix columns; for consecutive points those are
            # contiguous slices at fixed offsets from the column of E[first + 1].
            table = dict(zip(self._quantities, prefix))
            base = self._prefix.shape[1]

        out: dict[Feature, np.ndarray] = {}
        extremes: dict[tuple[str, int], np.ndarray] = {}
        for feature in self.features:
            if feature.kind in ("mean", "std", "nonfinite"):
                stop = base - feature.lag  # the prefix column just after each window
                start = stop - feature.window
                if feature.kind == "nonfinite":
                    result = _window_totals(table["bad"], start, stop, m)
                else:
                    n = _window_totals(table["count"], start, stop, m)
                    sums = _window_totals(table["sum"], start, stop, m)
                    full = ends >= feature.window + feature.lag - 1
                    if feature.kind == "mean":
                        result = np.where(full & (n > 0), sums / n + center, np.nan)
                    else:
                        squares = _window_totals(table["squares"], start, stop, m)
                        variance = np.maximum(squares - sums * sums / n, 0.0) / (n - 1)
                        result = np.where(full & (n > 1), np.sqrt(variance), np.nan)
            elif feature.kind == "baseline":
                result = self._baseline(feature, values, finite)
            elif feature.kind == "last" and feature.lag == 0:
                result = values
            elif feature.kind == "last":
                at = ends - feature.lag
                result = np.where(at >= 0, history[np.maximum(at - history_origin, 0)], np.nan)
            else:
                key = (feature.kind, feature.window)
                if key not in extremes:
                    extremes[key] = _rolling_extreme(history, feature.window, feature.kind)
                begin = ends - feature.lag - feature.window + 1
                rolled = extremes[key][np.maximum(begin - history_origin, 0)]
                result = np.where((begin >= 0) & np.isfinite(rolled), rolled, np.nan)
            out[feature] = result
            if m:
                self.latest[feature] = float(result[-1])

        self.count += m
        if self._summed:
            self._prefix = prefix[:, -(self.keep + 1) :]
        self._values = history[max(len(history) - self.keep, 0) :] if self.keep else self._values
        return out

    def _baseline(self, feature: Feature, values: np.ndarray, finite: np.ndarray) -> np.ndarray:
        state = self._baselines[feature]  # [finite points seen, their sum, the baseline once known]
        out = np.full(len(values), state[2])
        if not math.isnan(state[2]):
            return out
        positions = np.flatnonzero(finite)
        needed = feature.window - state[0]
        taken = positions[:needed]
        if len(taken):
            state[1] = float(np.cumsum(np.concatenate(([state[1]], values[taken])))[-1])
            state[0] += len(taken)
        if state[0] == feature.window:
            state[2] = state[1] / feature.window
            out[taken[-1] :] = state[2]
        return out


def _window_totals(prefix: np.ndarray, start: int, stop: int, m: int) -> np.ndarray:
    """Totals over the windows of m consecutive points, from prefix sums at fixed offsets."""
    return prefix[stop : stop + m] - prefix[start : start + m]


def _rolling_extreme(values: np.ndarray, window: int, kind: str) -> np.ndarray:
    """Min or max of every window of `window` consecutive values, by start index (van Herk/Gil-Werman).

    Non-finite values are skipped; a window with none finite gives +-inf.
    """
    fill = np.inf if kind == "min" else -np.inf
    ufunc = np.minimum if kind == "min" else np.maximum
    x = np.where(np.isfinite(values), values, fill)
    n = len(x)
    if n < window:
        return np.full(1, fill)
    # One column per block of `window` values, so each running extreme is `window` vector steps.
    blocks = np.concatenate((x, np.full((-n) % window, fill))).reshape(-1, window).T
    forward = ufunc.accumulate(blocks, axis=0).T.ravel()
    backward = ufunc.accumulate(blocks[::-1], axis=0)[::-1].T.ravel()
    return ufunc(backward[: n - window + 1], forward[window - 1 : n])


# ---------------------------------------------------------------------------------------------
# Evaluation


@dataclass
class Frame:
    """What an expression is evaluated against: the clock points of one rule in one batch.

    feature: returns a Feature's values aligned with the clock points (as of each point's step).
    state: the rule's per-run state list, one slot per stateful node.
    """

    n: int
    steps: np.ndarray
    points: np.ndarray
    facts: Mapping[str, float]
    feature: Callable[[Feature], np.ndarray]
    state: list = field(default_factory=list)
    run: Mapping[str, float] = field(default_factory=dict)

    def at(self, index: int) -> Frame:
        """The same frame restricted to one point (for rendering messages there)."""
        return Frame(
            1,
            self.steps[index : index + 1],
            self.points[index : index + 1],
            self.facts,
            lambda feature: self.feature(feature)[index : index + 1],
            self.state,
            self.run,
        )


class Expr:
    kind = "number"  # or "boolean": 1.0 true, 0.0 false, NaN unknown

    def evaluate(self, frame: Frame):
        raise NotImplementedError



class Const(Expr):
    def __init__(self, value: float) -> None:
        self.value = value

    def evaluate(self, frame: Frame):
        return self.value


class Fact(Expr):
    def __init__(self, name: str) -> None:
        self.name = name

    def evaluate(self, frame: Frame):
        return frame.facts.get(self.name, math.nan)


class RunVariable(Expr):
    def __init__(self, name: str) -> None:
        self.name = name

    def evaluate(self, frame: Frame):
        return frame.run.get(self.name, math.nan)


class PointVariable(Expr):
    def __init__(self, name: str) -> None:
        self.name = name

    def evaluate(self, frame: Frame):
        if self.name == "step":
            return frame.steps
        if self.name == "points":
            return frame.points
        return frame.steps / frame.facts.get("max_steps", math.nan)


class FeatureRef(Expr):
    def __init__(self, feature: Feature) -> None:
        self.feature = feature

    def evaluate(self, frame: Frame):
        return frame.feature(self.feature)


class Arithmetic(Expr):
    _OPS = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}

    def __init__(self, op: str, left: Expr, right: Expr) -> None:
        self.op, self.left, self.right = op, left, right

    def evaluate(self, frame: Frame):
        return self._OPS[self.op](self.left.evaluate(frame), self.right.evaluate(frame))



class Apply(Expr):
    """A one-argument numeric function: negation, abs, sqrt, exp, log."""

    _FUNCTIONS = {"-": np.negative, "abs": np.abs, "sqrt": np.sqrt, "exp": np.exp, "log": np.log}

    def __init__(self, name: str, operand: Expr) -> None:
        self.name, self.operand = name, operand

    def evaluate(self, frame: Frame):
        return self._FUNCTIONS[self.name](self.operand.evaluate(frame))



class Either(Expr):
    """`either(a, b)`: a where it is known, else b (a role one trainer logs under another form)."""

    def __init__(self, first: Expr, second: Expr) -> None:
        self.first, self.second = first, second

    def evaluate(self, frame: Frame):
        first = self.first.evaluate(frame)
        return np.where(np.isnan(first), self.second.evaluate(frame), first)


class Compare(Expr):
    kind = "boolean"
    _OPS = {
        "<": np.less,
        "<=": np.less_equal,
        ">": np.greater,
        ">=": np.greater_equal,
        "==": np.equal,
        "!=": np.not_equal,
    }

    def __init__(self, op: str, left: Expr, right: Expr) -> None:
        self.op, self.left, self.right = op, left, right

    def evaluate(self, frame: Frame):
        a = self.left.evaluate(frame)
        b = self.right.evaluate(frame)
        return np.where(np.isnan(a) | np.isnan(b), np.nan, self._OPS[self.op](a, b))



class Logical(Expr):
    """Three-valued and/or."""

    kind = "boolean"

    def __init__(self, op: str, left: Expr, right: Expr) -> None:
        self.op, self.left, self.right = op, left, right

    def evaluate(self, frame: Frame):
        a = self.left.evaluate(frame)
        b = self.right.evaluate(frame)
        if self.op == "and":
            return np.where((a == 0) | (b == 0), 0.0, np.minimum(a, b))
        return np.where((a == 1) | (b == 1), 1.0, np.maximum(a, b))



class Not(Expr):
    kind = "boolean"

    def __init__(self, operand: Expr) -> None:
        self.operand = operand

    def evaluate(self, frame: Frame):
        return 1.0 - self.operand.evaluate(frame)



def _as_array(value, n: int) -> np.ndarray:
    if isinstance(value, np.ndarray) and value.shape == (n,):
        return value
    return np.full(n, value, dtype=np.float64)


def consecutive(holds: np.ndarray, carried: int) -> np.ndarray:
    """For each point, how many consecutive points up to it hold; `carried` is the run before."""
    index = np.arange(len(holds))
    last_break = np.maximum.accumulate(np.where(holds, -1, index))
    return np.where(last_break >= 0, index - last_break, index + 1 + carried)


class Stateful(Expr):
    """A node that remembers across batches; its state lives in frame.state[self.slot]."""

    slot = -1

    def initial_state(self):
        raise NotImplementedError


class ForPoints(Stateful):
    kind = "boolean"

    def __init__(self, condition: Expr, count: int) -> None:
        self.condition, self.count = condition, count

    def initial_state(self):
        return [0]

    def evaluate(self, frame: Frame):
        state = frame.state[self.slot]
        holds = _as_array(self.condition.evaluate(frame), frame.n) == 1
        run = consecutive(holds, state[0])
        if frame.n:
            state[0] = int(run[-1])
        return (run >= self.count).astype(np.float64)



class CountPoints(Stateful):
    def __init__(self, condition: Expr, window: int) -> None:
        self.condition, self.window = condition, window

    def initial_state(self):
        return [np.zeros(0, dtype=np.int64)]

    def evaluate(self, frame: Frame):
        state = frame.state[self.slot]
        holds = (_as_array(self.condition.evaluate(frame), frame.n) == 1).astype(np.int64)
        history = np.concatenate((state[0], holds))
        totals = np.concatenate(([0], np.cumsum(history)))
        stops = np.arange(len(state[0]), len(history)) + 1
        counts = totals[stops] - totals[np.maximum(stops - self.window, 0)]
        state[0] = history[max(len(history) - self.window + 1, 0) :] if self.window > 1 else history[:0]
        return counts.astype(np.float64)



class Extreme(Stateful):
    """highest(x) / lowest(x): the running max / min of x over the run so far, NaN skipped."""

    def __init__(self, operand: Expr, kind: str) -> None:
        self.operand, self.kind_name = operand, kind

    def initial_state(self):
        return [math.nan]

    def evaluate(self, frame: Frame):
        state = frame.state[self.slot]
        ufunc = np.fmax if self.kind_name == "highest" else np.fmin
        values = _as_array(self.operand.evaluate(frame), frame.n)
        running = ufunc.accumulate(np.concatenate(([state[0]], values)))[1:]
        if frame.n:
            state[0] = float(running[-1])
        return running



# ---------------------------------------------------------------------------------------------
# Checking and compiling


@dataclass
class Program:
    """A checked expression, ready to evaluate.

    roles: the roles it reads, in order of first mention; features: the window features it needs;
    stateful: its stateful nodes (each gets a slot in the rule's state).
    """

    expr: Expr
    roles: tuple[str, ...]
    features: frozenset[Feature]
    stateful: tuple[Stateful, ...]

    def evaluate(self, frame: Frame) -> np.ndarray:
        """One value per point of the frame. NaN and Inf are data here, so numpy's warnings for
        them are silenced; the engine evaluates inside one such block per update (see `values`)."""
        with np.errstate(all="ignore"):
            return self.values(frame)

    def values(self, frame: Frame) -> np.ndarray:
        """As evaluate, for callers that already silenced numpy's floating-point warnings."""
        return _as_array(self.expr.evaluate(frame), frame.n)


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
            if node.op in _COMPARISONS:
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
        if function in _STATEFUL_FUNCTIONS:
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
        if function in _WINDOW_FUNCTIONS:
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
