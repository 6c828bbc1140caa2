"""The condition language: parsing, checking, three-valued logic, window functions, templates."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from search import examples

from rlhf_tui.rules.language import (
    ConditionError,
    Feature,
    Frame,
    RoleWindow,
    compile_expression,
    compile_template,
    parse,
    tokenize,
)


def frame_for(values: dict[str, list[float]], facts=None, state=None) -> tuple[Frame, dict]:
    """A frame over equally long role series, every role's features computed by a RoleWindow."""
    n = len(next(iter(values.values())))
    cache: dict[Feature, np.ndarray] = {}
    windows: dict[str, RoleWindow] = {}

    def feature(spec: Feature) -> np.ndarray:
        if spec not in cache:
            window = RoleWindow([spec])
            cache[spec] = window.advance(np.array(values[spec.role], dtype=float))[spec]
            windows[spec.role] = window
        return cache[spec]

    steps = np.arange(1, n + 1, dtype=float)
    return Frame(n, steps, steps, facts or {}, feature, state or []), windows


def evaluate(text: str, values: dict[str, list[float]], facts=None, params=None) -> np.ndarray:
    program = compile_expression(text, params)
    frame, _ = frame_for(values, facts, [node.initial_state() for node in program.stateful])
    return program.evaluate(frame)


def test_tokens_keep_columns_and_keywords():
    tokens = tokenize("mean(loss, 20) >= 0.5 and not x")
    assert [(t.kind, t.text, t.column) for t in tokens[:4]] == [
        ("name", "mean", 1),
        ("op", "(", 5),
        ("name", "loss", 6),
        ("op", ",", 10),
    ]
    assert [t.kind for t in tokens if t.text in ("and", "not")] == ["keyword", "keyword"]


def test_precedence_of_arithmetic_comparison_and_logic():
    out = evaluate("1 + 2 * 3 == 7 and not 2 - 1 - 1 != 0 or 1 > 2", {"loss": [0.0]})
    assert out.tolist() == [1.0]
    assert evaluate("-(2 + 1) * 2", {"loss": [0.0]}).tolist() == [-6.0]
    assert evaluate("8 / 2 / 2", {"loss": [0.0]}).tolist() == [2.0]


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("loss >", "unexpected end of text", 7),
        ("mean(loss, 20", "expected ')'", 14),
        ("loss > 1 > 0", "chained comparisons", 10),
        ("__import__('os')", "unexpected character", 12),
        ("los > 1", "unknown name 'los'", 1),
        ("mean(1, 20) > 0", "needs a metric role first", 6),
        ("mean(loss, 2.5) > 0", "whole number", 12),
        ("mean(loss) > 0", "takes 2 to 3 arguments", 1),
        ("frobnicate(loss) > 0", "unknown function", 1),
        ("loss and 1 > 0", "expected a condition", 6),
        ("(loss > 1) + 1 > 0", "expected a number", 12),
    ],
)
def test_errors_say_what_and_where(text, message, column):
    with pytest.raises(ConditionError) as caught:
        compile_expression(text, kind="boolean")
    assert message in str(caught.value)
    assert caught.value.column == column


def test_a_condition_must_be_a_comparison():
    with pytest.raises(ConditionError, match="expected a condition"):
        compile_expression("mean(loss, 5)", kind="boolean")


def test_params_override_names_and_fill_windows():
    program = compile_expression("mean(loss, window) > limit", {"window": 2, "limit": 1.5})
    assert Feature("mean", "loss", 2, 0) in program.features
    frame, _ = frame_for({"loss": [1.0, 2.0, 2.0]})
    assert program.evaluate(frame)[1:].tolist() == [0.0, 1.0]


def test_unknown_is_neither_true_nor_false():
    values = {"loss": [math.nan]}
    assert math.isnan(evaluate("loss > 1", values)[0])
    assert evaluate("loss > 1 and 1 > 2", values).tolist() == [0.0]
    assert evaluate("loss > 1 or 2 > 1", values).tolist() == [1.0]
    assert math.isnan(evaluate("not loss > 1", values)[0])
    assert math.isnan(evaluate("beta > 0", values)[0])  # an unknown fact
    assert evaluate("beta > 0", values, facts={"beta": 0.1}).tolist() == [1.0]


def test_point_variables_and_config_facts():
    values = {"loss": [1.0, 1.0, 1.0, 1.0]}
    facts = {"max_steps": 4.0, "config.fp16": 1.0}
    assert evaluate("progress >= 0.5", values, facts).tolist() == [0, 1, 1, 1]
    assert evaluate("step == points and config.fp16 == 1", values, facts).tolist() == [1, 1, 1, 1]


def naive(kind: str, x: np.ndarray, window: int, lag: int, at: int) -> float:
    end = at - lag
    start = end - window + 1
    if kind == "last":
        return x[end] if end >= 0 else math.nan
    if kind == "nonfinite":
        return float((~np.isfinite(x[max(start, 0) : end + 1])).sum()) if end >= 0 else 0.0
    if start < 0:
        return math.nan
    w = x[start : end + 1]
    w = w[np.isfinite(w)]
    if kind == "std":
        return float(w.std(ddof=1)) if len(w) > 1 else math.nan
    if not len(w):
        return math.nan
    return float({"mean": np.mean, "min": np.min, "max": np.max}[kind](w))


ALL_FEATURES = [
    Feature(kind, "x", window, lag)
    for kind in ("mean", "std", "min", "max", "nonfinite")
    for window in (1, 2, 5, 7)
    for lag in (0, 1, 3)
    if not (kind == "std" and window < 2)
] + [Feature("last", "x", 1, lag) for lag in (0, 2)] + [Feature("baseline", "x", 5)]


def test_window_features_match_a_naive_computation_and_skip_nan():
    rng = np.random.default_rng(3)
    for _ in range(60):
        n = int(rng.integers(1, 60))
        x = rng.normal(size=n) * 3 + 1
        x[rng.random(n) < 0.1] = np.nan
        x[rng.random(n) < 0.05] = np.inf
        features = [f for f in ALL_FEATURES if rng.random() < 0.5] or ALL_FEATURES
        out = RoleWindow(features).advance(x)
        for f in features:
            if f.kind == "baseline":
                finite = x[np.isfinite(x)]
                expected = np.full(n, np.nan)
                if len(finite) >= 5:
                    fifth = np.flatnonzero(np.isfinite(x))[4]
                    expected[fifth:] = finite[:5].mean()
            else:
                expected = np.array([naive(f.kind, x, f.window, f.lag, i) for i in range(n)])
            # Sums of squares lose relative precision for spreads ~1e-6 of the values' distance
            # from the first one; rules compare far larger spreads.
            np.testing.assert_allclose(out[f], expected, rtol=1e-6, atol=1e-6, err_msg=str(f))


def test_window_features_are_bit_identical_in_any_split():
    rng = np.random.default_rng(4)
    for _ in range(60):
        n = int(rng.integers(2, 120))
        x = rng.normal(size=n) * 10 ** rng.uniform(-3, 3)
        x[rng.random(n) < 0.05] = np.nan
        whole = RoleWindow(ALL_FEATURES).advance(x)
        window = RoleWindow(ALL_FEATURES)
        cuts = sorted({0, n, *rng.integers(1, n, size=4).tolist()})
        parts = [window.advance(x[a:b]) for a, b in zip(cuts, cuts[1:])]
        for f in ALL_FEATURES:
            assert np.array_equal(whole[f], np.concatenate([p[f] for p in parts]), equal_nan=True), f


def test_window_state_stays_bounded():
    window = RoleWindow([Feature("mean", "x", 50, 10), Feature("baseline", "x", 20)])
    for _ in range(20):
        window.advance(np.random.default_rng(0).normal(size=1000))
    assert window.count == 20_000
    assert window._prefix.shape[1] == 60 and len(window._values) == 59


def test_window_state_does_not_hold_on_to_the_backlog_it_was_fed():
    window = RoleWindow([Feature("std", "x", 50, 10), Feature("last", "x", 1, 5), Feature("max", "x", 20)])
    window.advance(np.random.default_rng(0).normal(size=100_000))

    def held_bytes(array: np.ndarray) -> int:  # a slice keeps the whole array it was cut from alive
        while array.base is not None:
            array = array.base
        return array.nbytes

    assert held_bytes(window._prefix) < 10_000 and held_bytes(window._values) < 10_000


def test_relative_functions():
    values = {"loss": [2.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 4.0]}
    assert evaluate("drop(loss, 3, 4)", values)[6] == pytest.approx(0.5)
    assert evaluate("rise(loss, 2, 4)", values)[7] == pytest.approx(0.25)
    assert evaluate("spike(loss, 3)", values)[7] == pytest.approx(4.0)
    assert evaluate("slope(loss, 4)", values)[5] == pytest.approx(-0.5)
    z = evaluate("zscore(loss, 3)", {"loss": [1.0, 2.0, 3.0, 5.0]})
    assert z[3] == pytest.approx(3.0)


def test_stateful_functions_carry_across_batches():
    program = compile_expression("(loss > 1 for 3) and count(loss > 1, 4) == 3 and highest(loss) >= 5")
    state = [node.initial_state() for node in program.stateful]
    series = [2.0, 5.0, 2.0, 2.0, 0.0, 2.0]
    results = []
    for start in range(0, len(series), 2):  # two points per batch
        frame, _ = frame_for({"loss": series[start : start + 2]}, state=state)
        results.extend(program.evaluate(frame).tolist())
    assert results == [0, 0, 1, 0, 0, 0]


def test_stateful_functions_are_rejected_where_values_are_shown():
    with pytest.raises(ConditionError, match="only allowed in conditions"):
        compile_expression("highest(loss)", allow_state=False)
    with pytest.raises(ConditionError, match="only allowed in conditions"):
        compile_template("best {lowest(loss):.2f}")


def test_run_scope_reads_run_variables_only():
    program = compile_expression("stalled_for > 60", scope="run", kind="boolean")
    frame = Frame(1, np.ones(1), np.ones(1), {}, lambda spec: np.full(1, np.nan), [], {"stalled_for": 120.0})
    assert program.evaluate(frame).tolist() == [1.0]
    with pytest.raises(ConditionError):
        compile_expression("mean(loss, 3) > 1", scope="run")
    with pytest.raises(ConditionError, match="unknown name 'stalled_for'"):
        compile_expression("stalled_for > 0")


def test_templates_format_values_and_escape_braces():
    template = compile_template("loss {mean(loss, 2):.3f} at {step:d} ({loss / 2:.0%}) {{literal}} {beta}")
    frame, _ = frame_for({"loss": [1.0, 2.0]})
    assert template.render(frame.at(1)) == "loss 1.500 at 2 (100%) {literal} nan"


@pytest.mark.parametrize(
    ("text", "message"),
    [("{loss:.3x}", "not allowed"), ("value {loss", "unclosed"), ("a } b", "unmatched"), ("{los}", "unknown name")],
)
def test_template_errors(text, message):
    with pytest.raises(ConditionError, match=message):
        compile_template(text)


def test_parse_builds_a_tree_not_code():
    tree = parse("mean(loss, 5) > 0.69 for 3")
    assert type(tree).__name__ == "For"
    assert type(tree.condition).__name__ == "Binary"


WORDS = ["loss", "kl", "step", "points", "progress", "beta", "ln2", "mean", "min", "max", "std", "slope",
         "last", "baseline", "drop", "rise", "spike", "zscore", "nonfinite", "abs", "sqrt", "exp", "log",
         "count", "highest", "lowest", "and", "or", "not", "for", "(", ")", ",", "<", ">=", "==", "+", "-",
         "*", "/", "0", "1", "3", "2.5", "1e400"]


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.sampled_from(WORDS), min_size=1, max_size=16), st.integers(1, 30), st.integers(0, 2**32 - 1))
def test_whatever_compiles_evaluates_on_hostile_data(words, n, seed):
    try:
        program = compile_expression(" ".join(words))
    except ConditionError:
        return
    rng = np.random.default_rng(seed)
    values = {role: rng.choice([0.0, 1.0, -1.0, np.nan, np.inf, -np.inf, 1e308], size=n) for role in ("loss", "kl")}
    frame, _ = frame_for(values, {"beta": 0.1, "max_steps": 0.0}, [node.initial_state() for node in program.stateful])
    assert program.evaluate(frame).shape == (n,)


@pytest.mark.parametrize(
    "text",
    ["(" * 3000 + "loss" + ")" * 3000 + " > 0", "not " * 3000 + "loss > 1", "-" * 3000 + "1 > 0",
     " + ".join(["loss"] * 5000) + " > 1", "loss > 1 for 1e400", "mean(loss, 99999999999999999999) > 1"],
)
def test_hostile_conditions_are_refused_with_a_reason(text):
    with pytest.raises(ConditionError, match="nested|too long|whole number"):
        compile_expression(text)
