"""Evaluating a checked expression over numpy arrays: the `Frame` of clock points, the expression
nodes with three-valued logic, the stateful nodes (`for`, `count`, `highest`, `lowest`) and `Program`."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from rlhf_tui.rules.language.windows import Feature


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
