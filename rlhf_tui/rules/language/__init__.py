"""The condition language of diagnostic rules: tokenizer, parser, checker and vectorised evaluator.

Rules are data, so their conditions are text. This package turns that text into an expression tree
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

Functions over expressions: `abs(x)`, `sqrt(x)`, `exp(x)`, `log(x)`, `either(x, y)` (x where it is
known, else y), `count(condition, N)` (points among the last N where it held), `highest(x)` /
`lowest(x)` (over the whole run so far). `count`, `highest`, `lowest` and `for` keep state and are
allowed in conditions only, not in messages or values. Nesting is limited to MAX_NESTING levels and windows to MAX_WINDOW points.

Missing data is unknown, never false alarm: a window statistic is NaN until its window is full, NaN
and Inf points are skipped (and counted by `nonfinite`), a role the run does not log is NaN, and so is
an unknown fact. Comparisons with NaN are unknown, `and`/`or`/`not` follow three-valued logic
(`unknown and false` is false, `unknown or true` is true, `not unknown` is unknown), and a rule fires
only where its condition is definitely true.

The parts: `syntax` (tokens, tree, parser, the names it knows), `windows` (a role's window features,
kept incrementally), `evaluate` (expression nodes and `Program`), `compile` (checking a tree into a
`Program`; message templates).
"""

from rlhf_tui.rules.language.compile import (
    Template,
    compile_expression,
    compile_template,
)
from rlhf_tui.rules.language.evaluate import Frame, Program, consecutive
from rlhf_tui.rules.language.syntax import ROLES, ConditionError, parse, tokenize
from rlhf_tui.rules.language.windows import Feature, RoleWindow

__all__ = [
    "ROLES",
    "ConditionError",
    "Feature",
    "Frame",
    "Program",
    "RoleWindow",
    "Template",
    "compile_expression",
    "compile_template",
    "consecutive",
    "parse",
    "tokenize",
]
