"""The rule catalogue: the built-ins, and a user's rule directory (add, override, disable, errors)."""

import re
import sys
from pathlib import Path


from rlhf_tui.rules import load_rules
from rlhf_tui.rules.severity import SEVERITIES
from rlhf_tui.rules.catalog import compile_rule

sys.path.insert(0, str(Path(__file__).parent))
from rules_fakerun import diagnose  # noqa: E402

CATALOG_README = Path(__file__).parents[1] / "rlhf_tui" / "rules" / "catalog" / "README.md"
TRAINERS = ("dpo", "ipo", "kto", "orpo", "cpo", "grpo", "rloo", "ppo", "online_dpo", "sft", "reward", "unknown")


def test_builtin_catalogue_loads_cleanly_with_reference_and_action_everywhere():
    rules, errors = load_rules()
    assert errors == []
    ids = [rule.id for rule in rules]
    assert len(ids) == len(set(ids)) >= 25
    for rule in rules:
        assert rule.severity in SEVERITIES
        assert rule.reference and rule.action, rule.id
        assert rule.source.startswith("rlhf_tui/rules/catalog/")
        for trainer in TRAINERS:
            if rule.applies_to(trainer):
                compile_rule(rule, trainer)


def test_suppressors_come_first():
    rules, _ = load_rules()
    position = {rule.id: i for i, rule in enumerate(rules)}
    for rule in rules:
        for other in rules:
            if other is not rule and rule.suppresses_rule(other):
                assert position[rule.id] < position[other.id], (rule.id, other.id)


def test_the_readme_documents_every_function_and_field():
    readme = CATALOG_README.read_text()
    for word in ("mean", "min", "max", "std", "slope", "baseline", "drop", "rise", "spike", "zscore",
                 "nonfinite", "count", "highest", "lowest", "last", "for", "warmup", "clear_after",
                 "suppresses", "causes", "params", "trainer_params", "override", "disable", "no_signal_loss"):
        assert re.search(rf"`{word}\b", readme), word


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def test_user_rules_add_override_and_disable(tmp_path):
    write(tmp_path, "10-mine.yaml", """
rules:
  - id: my_loss_high
    title: Loss above my limit
    severity: low
    when: mean(loss, 3) > limit
    params: {limit: 5}
    message: loss is {mean(loss, 3):.2f}
override:
  lr_zero: {severity: medium, warmup: 7}
  grad_explosion:
    params: {jump: 3}
disable: [stalled]
""")
    rules, errors = load_rules(tmp_path)
    assert errors == []
    by_id = {rule.id: rule for rule in rules}
    assert "stalled" not in by_id
    assert by_id["my_loss_high"].params == {"limit": 5.0}
    assert (by_id["lr_zero"].severity, by_id["lr_zero"].warmup) == ("medium", 7)
    builtin = {rule.id: rule for rule in load_rules()[0]}["grad_explosion"].params
    assert by_id["grad_explosion"].params == {**builtin, "jump": 3.0}  # merged, not replaced
    assert by_id["grad_explosion"].title == "Gradient explosion"


def test_a_user_rule_with_a_builtin_id_replaces_it(tmp_path):
    write(tmp_path, "replace.yaml", """
rules:
  - id: lr_zero
    title: My own lr check
    severity: low
    when: last(learning_rate) < 0
    message: negative lr
""")
    rules, errors = load_rules(tmp_path)
    assert errors == []
    assert [r.title for r in rules if r.id == "lr_zero"] == ["My own lr check"]


def test_an_overridden_threshold_changes_what_fires(tmp_path):
    from rlhf_tui.core.records import Record

    records = [Record(step, None, {"loss": 1.0, "learning_rate": 0.0}) for step in range(1, 20)]
    assert "lr_zero" in [f.rule_id for f in diagnose("sft", records).findings]
    write(tmp_path, "late.yaml", "override:\n  lr_zero: {warmup: 50}\n")
    rules, _ = load_rules(tmp_path)
    from rlhf_tui.rules import Diagnostics
    from rules_fakerun import NOW, run_of

    diagnostics = Diagnostics(rules)
    diagnostics.update(run_of("sft", records), NOW)
    assert diagnostics.findings == []


def test_errors_name_file_and_line_and_other_rules_still_load(tmp_path):
    bad = write(tmp_path, "a-bad.yaml", """rules:
  - id: fine_one
    title: Fine
    severity: low
    when: loss > 100
    message: ok
  - id: broken_condition
    title: Broken
    severity: low
    when: mean(loss, 5) >> 1
    message: never
  - id: bad_severity
    title: Bad
    severity: urgent
    when: loss > 1
    message: m
  - id: typo_field
    title: Typo
    severity: low
    whne: loss > 1
    when: loss > 1
    message: m
  - id: bad_message
    title: Bad message
    severity: low
    when: loss > 1
    message: "value {los:.2f}"
override:
  no_such_rule: {severity: low}
disable: [nope]
""")
    write(tmp_path, "b-syntax.yaml", "rules:\n  - id: x\n    when: [unclosed\n")
    good = "rules:\n  - {id: good_two, title: G, severity: low, when: loss > 100, message: m}\n"
    write(tmp_path, "c-good.yaml", good)
    rules, errors = load_rules(tmp_path)
    ids = {rule.id for rule in rules}
    assert {"fine_one", "good_two", "lr_zero"} <= ids
    assert not ids & {"broken_condition", "bad_severity", "typo_field", "bad_message"}
    text = "\n".join(errors)
    assert f"{bad}:10: rule 'broken_condition': when: unexpected '>' (column 16)" in text
    assert f"{bad}:14: rule 'bad_severity': severity: must be one of" in text
    assert f"{bad}:20: rule 'typo_field': unknown field 'whne'" in text
    assert f"{bad}:27: rule 'bad_message': message: in {{los:.2f}}: unknown name 'los' (column 8)" in text
    assert f"{bad}:29: override of unknown rule 'no_such_rule'" in text
    assert f"{bad}:30: disable of unknown rule 'nope'" in text
    assert re.search(r"b-syntax\.yaml:\d+: not valid YAML", text)
    assert len(errors) == 7


def test_a_file_that_is_not_a_rule_mapping_is_reported(tmp_path):
    write(tmp_path, "list.yaml", "- just\n- a list\n")
    write(tmp_path, "keys.yaml", "rulez: []\n")
    write(tmp_path, "notes.txt", "ignored: not yaml by name\n")
    _, errors = load_rules(tmp_path)
    assert any("list.yaml:1: expected a mapping" in e for e in errors)
    assert any("keys.yaml:1: unknown top-level key(s) ['rulez']" in e for e in errors)
    assert len(errors) == 2


def test_yaml_is_data_only(tmp_path):
    write(tmp_path, "evil.yaml", "rules: !!python/object/apply:os.system ['echo pwned']\n")
    _, errors = load_rules(tmp_path)
    assert any("evil.yaml" in e and "not valid YAML" in e for e in errors)


def test_a_missing_rule_directory_is_an_error_not_a_crash(tmp_path):
    rules, errors = load_rules(tmp_path / "absent")
    assert rules and errors == [f"{tmp_path / 'absent'}: not a directory of rule files"]


def test_params_cannot_shadow_roles(tmp_path):
    write(tmp_path, "shadow.yaml", """
rules:
  - id: shadow
    title: S
    severity: low
    when: loss > 1
    params: {loss: 3}
    message: m
""")
    _, errors = load_rules(tmp_path)
    assert any("shadow" in e and "metric roles" in e for e in errors)


def test_suppression_cycles_are_reported(tmp_path):
    write(tmp_path, "cycle.yaml", """
rules:
  - {id: a, title: A, severity: low, when: loss > 1, message: m, suppresses: [b]}
  - {id: b, title: B, severity: low, when: loss > 1, message: m, suppresses: [a]}
""")
    _, errors = load_rules(tmp_path)
    assert any("suppression cycle" in e for e in errors)
