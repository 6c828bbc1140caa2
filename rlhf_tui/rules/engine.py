"""Incremental diagnosis of one run: rules evaluated over new points only, findings with a lifecycle.

`Diagnostics(rules)` is kept per run; `update(run)` reads only the points each role gained since the
last call (a cold start's backlog is one vectorised pass, in chunks of CHUNK_POINTS), so the cost of
one more step does not depend on how long the run is. Feeding a run's points in any split gives
the same findings as feeding them at once.

A rule is evaluated at every point of its *clock* role (its first role the run logs, unless it
names a clock); other roles are read as of the same step. Lifecycle of a finding:

- it fires once the condition has held on `for` consecutive points after `warmup` points;
- it stays active while the condition holds and clears when the rule's `clear` condition holds
  or, without one, after `clear_after` points on which it did not hold (hysteresis);
- it may fire again: the same Finding is reactivated and its `seq` grows;
- while another rule that lists it in `suppresses` is active, it is hidden; a finding that was
  active when its suppressor fired is folded into it (`superseded_by`) and not listed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlhf_tui.core.metrics import rules_trainer
from rlhf_tui.core.series import Series
from rlhf_tui.rules import severity
from rlhf_tui.rules.catalog import CompiledRule, Rule, compile_rule, order_by_suppression
from rlhf_tui.rules.language import Frame, RoleWindow, consecutive
from rlhf_tui.rules.view import RunView

CHUNK_POINTS = 16384
_NEVER = -(2**62)


@dataclass(frozen=True)
class Threshold:
    """A line a chart can draw: `value` on the chart of `role`."""

    role: str
    value: float


@dataclass
class Finding:
    """What one rule found in one run, with its history.

    message: the rule's message rendered with the values at `last_step`; when a likely cause is
    known it ends with "Likely cause: <cause>" (also in `cause`), and `action` is the cause's
    remedy when it has one. first_step: the step it first fired; fired_step: the step it last
    (re)fired; last_step: the last step its condition held. active: whether it holds now (with
    hysteresis). value: the rule's headline number at last_step. threshold: a line for the chart of
    the rule's role. seq: how many times it has fired (grows on every re-fire, so a view can mark
    what is new). superseded_by: the id of the rule it was folded into; such findings are not listed.
    """

    rule_id: str
    severity: str
    title: str
    reference: str
    action: str
    message: str = ""
    cause: str | None = None
    first_step: int | None = None
    fired_step: int | None = None
    last_step: int | None = None
    active: bool = False
    value: float | None = None
    threshold: Threshold | None = None
    seq: int = 0
    superseded_by: str | None = None


class _RuleState:
    """One rule's per-run state: O(1) besides its expressions' stateful nodes.

    raw: active by the rule's own condition and hysteresis; visible: raw and not suppressed.
    """

    def __init__(self, compiled: CompiledRule) -> None:
        self.compiled = compiled
        self.rule = compiled.rule
        self.clock: str | None = None
        self.when_state = [node.initial_state() for node in compiled.when.stateful]
        self.clear_state = [node.initial_state() for node in compiled.clear.stateful] if compiled.clear else []
        self.run_length = 0
        self.last_fire = _NEVER
        self.last_set = -1
        self.last_reset = -1
        self.raw = False
        self.raw_before = False
        self.chunk_raw: tuple[np.ndarray, np.ndarray] | None = None
        self.visible = False

    def raw_at(self, steps: np.ndarray) -> np.ndarray:
        """This rule's hysteresis state as of each of `steps` (for suppressing other rules)."""
        if self.chunk_raw is None:
            return np.full(len(steps), self.raw_before)
        own_steps, raw = self.chunk_raw
        if own_steps is steps:
            return raw
        index = np.searchsorted(own_steps, steps, side="right") - 1
        return np.where(index >= 0, raw[np.maximum(index, 0)], self.raw_before)


class Diagnostics:
    """The findings of one run, kept up to date incrementally. One instance per run."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self._rules = _in_suppression_order(tuple(rules))
        self._context: tuple | None = None
        self._facts: dict[str, float] = {}
        self._reset([])

    @property
    def findings(self) -> list[Finding]:
        """Findings, active first, then by severity and first step; folded ones left out."""
        shown = [f for f in self._findings.values() if f.superseded_by is None]
        return sorted(shown, key=lambda f: (not f.active, severity.rank(f.severity), f.first_step or 0, f.rule_id))

    def update(self, run: RunView, now: float) -> bool:
        """Consume what is new in `run`; True when a finding appeared, (re)fired, cleared or was folded.

        Values of active findings are refreshed on every call regardless. A new `run.generation`,
        trainer or relevant fact resets all state and replays the run from its first point. `now`
        (seconds since the epoch) is when run-scope rules look at the run (stalled_for).
        """
        changed = self._sync(run)
        new = self._new_points(run)
        if new is None:
            self._reset(self._compiled)
            changed = True
            new = self._new_points(run) or {}
        with np.errstate(all="ignore"):  # NaN and Inf are data here, not errors
            for chunk in _chunks(new):
                changed |= self._advance(chunk)
            changed |= self._update_run_scope(run, now)
        return changed

    # -- state ---------------------------------------------------------------------------------

    def _sync(self, run: RunView) -> bool:
        trainer = rules_trainer(run.trainer or "unknown")
        facts = derive_facts(trainer, run.facts)
        context = (run.generation, trainer, facts)
        if context == self._context:
            return False
        had_findings = bool(self._findings)
        self._context = context
        self._facts = facts
        self._reset([compile_rule(rule, trainer) for rule in self._rules if rule.applies_to(trainer)])
        return had_findings

    def _reset(self, compiled: list[CompiledRule]) -> None:
        self._compiled = compiled
        self._states = [_RuleState(c) for c in compiled if c.rule.scope == "points"]
        self._run_states = [_RuleState(c) for c in compiled if c.rule.scope == "run"]
        self._suppressors = {
            state.rule.id: [o for o in self._states if o is not state and o.rule.suppresses_rule(state.rule)]
            for state in self._states
        }
        features: dict[str, set] = {}
        for c in compiled:
            for role in c.roles:
                features.setdefault(role, set())
            for program in c.programs:
                for feature in program.features:
                    features[feature.role].add(feature)
        self._windows = {role: RoleWindow(specs) for role, specs in features.items()}
        self._findings: dict[str, Finding] = {}
        self._step_times = _StepTimes()

    def _series(self, run: RunView, role: str) -> Series | None:
        series = run.role(role)
        if role == "step_time" and (series is None or len(series) == 0):
            return self._step_times.update(run.times)
        return series

    def _new_points(self, run: RunView) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
        """New (steps, values) per role; None when a series shrank (the run was rewritten)."""
        new = {}
        for role, window in self._windows.items():
            series = self._series(run, role)
            size = 0 if series is None else len(series)
            if size < window.count:
                return None
            if series is not None and size > window.count:
                new[role] = (series.steps[window.count :], series.values[window.count :])
        return new

    # -- one chunk of points -------------------------------------------------------------------

    def _advance(self, chunk: dict[str, tuple[np.ndarray, np.ndarray]]) -> bool:
        first_index = {}
        before = {}
        features = {}
        for role, (_, values) in chunk.items():
            window = self._windows[role]
            first_index[role] = window.count
            before[role] = dict(window.latest)
            features[role] = window.advance(values)
        for state in self._states:
            state.raw_before = state.raw
            state.chunk_raw = None
        alignments: dict[tuple[str, str], np.ndarray | None] = {}

        def sampler(clock: str):
            clock_steps = chunk[clock][0]
            m = len(clock_steps)

            def feature(spec):
                role = spec.role
                if role == clock:
                    return features[role][spec]
                if role not in chunk:
                    window = self._windows.get(role)
                    return np.full(m, window.latest[spec] if window is not None else math.nan)
                key = (role, clock)
                if key not in alignments:
                    role_steps = chunk[role][0]
                    same = len(role_steps) == m and np.array_equal(role_steps, clock_steps)
                    alignments[key] = None if same else np.searchsorted(role_steps, clock_steps, "right") - 1
                index = alignments[key]
                if index is None:
                    return features[role][spec]
                return np.where(index >= 0, features[role][spec][np.maximum(index, 0)], before[role][spec])

            return feature

        changed = False
        for state in self._states:
            if state.clock is None:
                state.clock = next((r for r in state.compiled.clock if self._windows[r].count), None)
            if state.clock is None or state.clock not in chunk:
                continue
            steps = chunk[state.clock][0]
            index = first_index[state.clock] + np.arange(len(steps))
            frame = Frame(
                len(steps), steps.astype(np.float64), (index + 1).astype(np.float64), self._facts, sampler(state.clock)
            )
            changed |= self._evaluate(state, frame, steps, index)
        return changed

    def _evaluate(self, state: _RuleState, frame: Frame, steps: np.ndarray, index: np.ndarray) -> bool:
        """Run one rule over one batch of its clock points; True when its finding changed state."""
        compiled = state.compiled
        frame.state = state.when_state
        held = (compiled.when.values(frame) == 1) & (index >= state.rule.warmup)
        if not state.raw and not held.any():
            # Idle and staying idle: only the stateful parts of a clear condition need the points.
            state.run_length = 0
            if compiled.clear is not None and compiled.clear.stateful:
                frame.state = state.clear_state
                compiled.clear.values(frame)
            return False
        fire, raw = self._hysteresis(state, frame, held, index)
        state.chunk_raw = (steps, raw)
        suppressors = [(other.rule.id, other.raw_at(steps)) for other in self._suppressors[state.rule.id]]
        visible = raw & ~np.logical_or.reduce([active for _, active in suppressors], initial=False)
        previous = np.concatenate(([state.visible], visible[:-1]))
        rising = np.flatnonzero(visible & ~previous)
        falling = np.flatnonzero(~visible & previous)
        state.visible = bool(visible[-1])
        finding = self._findings.get(state.rule.id)
        if finding is None and not len(rising):
            return False
        if finding is None:
            finding = self._findings[state.rule.id] = Finding(
                state.rule.id, state.rule.severity, state.rule.title, state.rule.reference, state.rule.action
            )
            finding.first_step = int(steps[rising[0]])
        changed = bool(len(rising) or len(falling))
        if len(rising):
            finding.seq += len(rising)
            finding.fired_step = int(steps[rising[-1]])
        if len(falling) and (not len(rising) or falling[-1] > rising[-1]):
            # Hidden while its own condition still held: folded into the rule that hid it.
            j = falling[-1]
            folded = next((rule_id for rule_id, active in suppressors if active[j]), None) if raw[j] else None
            changed |= folded != finding.superseded_by
            finding.superseded_by = folded
        elif len(rising):
            finding.superseded_by = None
        finding.active = state.visible
        shown = np.flatnonzero(visible & fire)
        at = int(shown[-1]) if len(shown) else int(rising[-1]) if len(rising) else None
        if at is not None:
            self._render(finding, compiled, frame, at, int(steps[at]))
        return changed

    @staticmethod
    def _hysteresis(state: _RuleState, frame: Frame, held: np.ndarray, index: np.ndarray):
        """(fire, raw): where the rule fires (held on `for` points) and where it is active."""
        rule, compiled = state.rule, state.compiled
        run = consecutive(held, state.run_length)
        state.run_length = int(run[-1])
        fire = run >= rule.for_points
        if compiled.clear is not None:
            frame.state = state.clear_state
            reset = compiled.clear.values(frame) == 1
        else:
            last_fire = np.maximum(np.maximum.accumulate(np.where(fire, index, _NEVER)), state.last_fire)
            state.last_fire = int(last_fire[-1])
            reset = (index - last_fire) >= rule.clear_after
        last_set = np.maximum(np.maximum.accumulate(np.where(fire, index, -1)), state.last_set)
        last_reset = np.maximum(np.maximum.accumulate(np.where(reset, index, -1)), state.last_reset)
        state.last_set, state.last_reset = int(last_set[-1]), int(last_reset[-1])
        raw = (last_set >= 0) & (last_set >= last_reset)  # a fire and a reset together: it fires
        state.raw = bool(raw[-1])
        return fire, raw

    @staticmethod
    def _render(finding: Finding, compiled: CompiledRule, frame: Frame, i: int, step: int | None) -> None:
        at = frame.at(i)
        finding.last_step = step
        message = compiled.message.render(at)
        finding.cause = None
        finding.action = compiled.rule.action
        for program, cause in compiled.causes:
            if program.evaluate(at)[0] == 1:
                finding.cause = cause.text
                finding.action = cause.action or compiled.rule.action
                message = f"{message} Likely cause: {cause.text}"
                break
        finding.message = message
        finding.value = _number(compiled.value.evaluate(at)[0]) if compiled.value else None
        if compiled.threshold is not None and compiled.rule.threshold_role is not None:
            level = _number(compiled.threshold.evaluate(at)[0])
            finding.threshold = None if level is None else Threshold(compiled.rule.threshold_role, level)

    # -- run-scope rules -----------------------------------------------------------------------

    def _update_run_scope(self, run: RunView, now: float) -> bool:
        if not self._run_states:
            return False
        quiet = run.quiet_for(now) if run.lifecycle(now) == "stalled" else None
        stalled = math.nan if quiet is None else quiet
        last_step = run.last_step
        variables = {"stalled_for": stalled, "last_step": math.nan if last_step is None else float(last_step)}
        step = np.array([math.nan if last_step is None else float(last_step)])
        changed = False
        for state in self._run_states:
            frame = Frame(1, step, step, self._facts, lambda spec: np.full(1, math.nan), state.when_state, variables)
            holds = bool(state.compiled.when.evaluate(frame)[0] == 1)
            finding = self._findings.get(state.rule.id)
            if holds and not state.visible:
                if finding is None:
                    rule = state.rule
                    finding = self._findings[rule.id] = Finding(
                        rule.id, rule.severity, rule.title, rule.reference, rule.action
                    )
                    finding.first_step = last_step
                finding.seq += 1
                finding.fired_step = last_step
                changed = True
            elif state.visible and not holds:
                changed = True
            state.visible = holds
            if finding is not None:
                finding.active = holds
                if holds:
                    self._render(finding, state.compiled, frame, 0, last_step)
        return changed


@functools.lru_cache(maxsize=8)
def _in_suppression_order(rules: tuple[Rule, ...]) -> list[Rule]:
    """The rules with every suppressor first (load_rules already orders them; this is for any list)."""
    return order_by_suppression(list(rules), [])


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _chunks(new: dict[str, tuple[np.ndarray, np.ndarray]]):
    """Split new points into chunks of about CHUNK_POINTS, cut at the same step for every role."""
    if not new:
        return
    biggest = max(new, key=lambda role: len(new[role][0]))
    if len(new[biggest][0]) <= CHUNK_POINTS:
        yield new
        return
    bounds = list(new[biggest][0][CHUNK_POINTS - 1 :: CHUNK_POINTS]) + [None]
    starts = dict.fromkeys(new, 0)
    for bound in bounds:
        chunk = {}
        for role, (steps, values) in new.items():
            stop = len(steps) if bound is None else int(np.searchsorted(steps, bound, "right"))
            stop = max(stop, starts[role])
            if stop > starts[role]:
                chunk[role] = (steps[starts[role] : stop], values[starts[role] : stop])
            starts[role] = stop
        if chunk:
            yield chunk


class _StepTimes:
    """Seconds per step derived from wall times, for runs whose trainer does not log step_time."""

    def __init__(self) -> None:
        self.series = Series()
        self._consumed = 0
        self._previous: tuple[float, float] | None = None

    def update(self, times: Series | None) -> Series:
        if times is None or len(times) <= self._consumed:
            return self.series
        steps = times.steps[self._consumed :].astype(np.float64)
        stamps = times.values[self._consumed :]
        if self._previous is not None:
            steps = np.concatenate(([self._previous[0]], steps))
            stamps = np.concatenate(([self._previous[1]], stamps))
        self._consumed = len(times)
        self._previous = (float(steps[-1]), float(stamps[-1]))
        with np.errstate(divide="ignore", invalid="ignore"):
            per_step = np.diff(stamps) / np.diff(steps)
        keep = (np.diff(steps) > 0) & np.isfinite(per_step)
        self.series.extend(steps[1:][keep].astype(np.int64), per_step[keep])
        return self.series


# ---------------------------------------------------------------------------------------------
# Facts


def derive_facts(trainer: str, facts: Mapping[str, object]) -> dict[str, float]:
    """The numeric facts rules can name, from the run's facts (FACT_KEYS) and its config.

    Config booleans become 1/0. Unknown facts are left out (a rule reading one sees NaN and stays
    silent).
    """
    config = facts.get("config")
    config = config if isinstance(config, Mapping) else {}
    out = {
        f"config.{key}": float(value)
        for key, value in config.items()
        if isinstance(value, bool) or _real(value) is not None
    }
    max_steps = _positive(facts.get("max_steps"), config.get("max_steps"))
    beta = _real(facts.get("beta"), config.get("beta"))
    per_device = _positive(config.get("per_device_train_batch_size"), config.get("train_batch_size"))
    logging_steps = _positive(facts.get("logging_steps"), config.get("logging_steps"))
    if logging_steps is not None and logging_steps < 1:
        logging_steps = math.ceil(logging_steps * max_steps) if max_steps else None
    warmup = _real(config.get("warmup_steps")) or 0.0
    if 0 < warmup < 1:
        warmup = warmup * max_steps if max_steps else 0.0
    ratio = _real(config.get("warmup_ratio")) or 0.0
    if not warmup and ratio and max_steps:
        warmup = ratio * max_steps
    named = {
        "beta": beta,
        "max_steps": max_steps,
        "logging_steps": logging_steps or 1.0,
        "lr_warmup_steps": warmup,
        "num_generations": _positive(config.get("num_generations")),
        "max_completion_length": _positive(config.get("max_completion_length")),
        "no_signal_loss": no_signal_loss(trainer, facts.get("loss_type") or config.get("loss_type"), beta, config),
    }
    if per_device is not None:
        accumulation = _positive(config.get("gradient_accumulation_steps")) or 1.0
        processes = _positive(config.get("world_size"), config.get("num_processes")) or 1.0
        named["batch_size"] = per_device * accumulation * processes
    out.update({name: float(value) for name, value in named.items() if value is not None})
    return out


def no_signal_loss(trainer: str, loss_type: Any, beta: float | None, config: Mapping[str, Any]) -> float | None:
    """The loss a preference trainer logs when policy and reference agree (nothing learnt), if fixed.

    From TRL's loss definitions at zero log-ratio: sigmoid/robust/aot -log sigmoid(0) = ln 2;
    hinge relu(1 - 0) = 1; IPO (0 - 1/(2 beta))^2 = 1/(4 beta^2); SPPO-hard 2 (1/(2 beta))^2;
    NCA and BCO-pair 2 ln 2; APO 1; KTO 1 - sigmoid(0) = 0.5. None when an extra term (RPO's NLL,
    several weighted losses, unequal KTO weights) makes it run-dependent.
    """
    if isinstance(loss_type, (list, tuple)):
        if len(loss_type) != 1:
            return None
        loss_type = loss_type[0]
    if trainer == "kto":
        desirable = _real(config.get("desirable_weight")) or 1.0
        undesirable = _real(config.get("undesirable_weight")) or 1.0
        return 0.5 * desirable if desirable == undesirable else None
    if trainer not in ("dpo", "ipo") or _real(config.get("rpo_alpha")):
        return None
    kind = loss_type if isinstance(loss_type, str) else ("ipo" if trainer == "ipo" else "sigmoid")
    ln2 = math.log(2.0)
    fixed = {"sigmoid": ln2, "robust": ln2, "aot": ln2, "aot_pair": ln2, "hinge": 1.0, "apo_zero": 1.0,
             "apo_down": 1.0, "nca_pair": 2 * ln2, "bco_pair": 2 * ln2}
    if kind in fixed:
        return fixed[kind]
    if beta and kind == "ipo":
        return 1.0 / (4.0 * beta * beta)
    if beta and kind == "sppo_hard":
        return 0.5 / (beta * beta)
    return None


def _real(*values: Any) -> float | None:
    for value in values:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


def _positive(*values: Any) -> float | None:
    for value in values:
        number = _real(value)
        if number is not None and number > 0:
            return number
    return None
