"""The rule catalogue: built-in YAML shipped in the package, plus a user's rule directory.

A rule file is a YAML mapping with up to three keys (see catalog/README.md for the full reference)::

    rules:      # new rules; a rule whose id already exists replaces it
      - id: ...
    override:   # change fields of existing rules by id (params are merged)
      dpo_no_signal: {severity: medium, params: {tolerance: 0.02}}
    disable: [winrate_volatility]

Every expression is parsed and checked at load time. A bad rule is reported as
"<file>:<line>: rule '<id>': <problem>" and skipped; the other rules and files still load.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from rlhf_tui.rules.language import ROLES, ConditionError, Program, Template, compile_expression, compile_template
from rlhf_tui.rules.severity import SEVERITIES

_ID = re.compile(r"[A-Za-z0-9_.-]+")
_RULE_FIELDS = {
    "id",
    "title",
    "severity",
    "trainers",
    "scope",
    "when",
    "clear",
    "for",
    "warmup",
    "clear_after",
    "clock",
    "value",
    "threshold",
    "message",
    "reference",
    "action",
    "suppresses",
    "causes",
    "params",
    "trainer_params",
}
_FILE_KEYS = {"rules", "override", "disable"}
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Cause:
    """A likely cause named in a finding when `when` holds at the point it is reported."""

    when: str
    text: str
    action: str | None = None


@dataclass(frozen=True, eq=False)
class Rule:
    """One diagnostic rule, as written in the catalogue (expressions are still text).

    trainers: the trainer families it applies to, None for all. scope: "points" (evaluated at every
    logged point of its clock role) or "run" (once per update, over run variables such as
    stalled_for). for_points: consecutive points the condition must hold before it fires, after
    `warmup` points of the clock role. It clears when `clear` holds or, without `clear`, after
    `clear_after` points on which it did not hold. suppresses: ids of rules hidden while this one
    is active (one problem, one finding); "*" stands for every rule of lower severity.
    """

    id: str
    title: str
    severity: str
    when: str
    message: str
    reference: str = ""
    action: str = ""
    trainers: tuple[str, ...] | None = None
    scope: str = "points"
    clear: str | None = None
    for_points: int = 1
    warmup: int = 0
    clear_after: int = 10
    clock: tuple[str, ...] = ()
    value: str | None = None
    threshold_role: str | None = None
    threshold_value: str | None = None
    suppresses: tuple[str, ...] = ()
    causes: tuple[Cause, ...] = ()
    params: Mapping[str, float] = field(default_factory=dict)
    trainer_params: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    source: str = ""

    def applies_to(self, trainer: str) -> bool:
        return self.trainers is None or trainer in self.trainers

    def params_for(self, trainer: str) -> dict[str, float]:
        return {**self.params, **self.trainer_params.get(trainer, {})}

    def suppresses_rule(self, other: Rule) -> bool:
        if other.id in self.suppresses:
            return True
        return "*" in self.suppresses and SEVERITIES.index(other.severity) > SEVERITIES.index(self.severity)


@dataclass(frozen=True)
class CompiledRule:
    """A rule's expressions checked and compiled for one trainer family."""

    rule: Rule
    when: Program
    clear: Program | None
    value: Program | None
    threshold: Program | None
    message: Template
    causes: tuple[tuple[Program, Cause], ...]
    clock: tuple[str, ...]  # candidate clock roles, in order of preference
    roles: tuple[str, ...]  # every role any expression reads

    @property
    def programs(self) -> tuple[Program, ...]:
        optional = (self.clear, self.value, self.threshold)
        return (
            (self.when,)
            + tuple(p for p in optional if p is not None)
            + self.message.programs
            + tuple(program for program, _ in self.causes)
        )


@functools.lru_cache(maxsize=None)
def compile_rule(rule: Rule, trainer: str) -> CompiledRule:
    """Compile `rule` with the params for `trainer`; raises ConditionError (with the field named)."""
    params = rule.params_for(trainer)
    scope = rule.scope

    def expression(name: str, text: str, kind: str, allow_state: bool = False) -> Program:
        try:
            return compile_expression(text, params, scope=scope, kind=kind, allow_state=allow_state)
        except ConditionError as error:
            raise ConditionError(f"{name}: {error}") from None

    when = expression("when", rule.when, "boolean", allow_state=True)
    clear = expression("clear", rule.clear, "boolean", allow_state=True) if rule.clear else None
    value = expression("value", rule.value, "number") if rule.value else None
    threshold = expression("threshold", rule.threshold_value, "number") if rule.threshold_value else None
    causes = tuple((expression("causes", cause.when, "boolean"), cause) for cause in rule.causes)
    try:
        message = compile_template(rule.message, params, scope=scope)
    except ConditionError as error:
        raise ConditionError(f"message: {error}") from None
    compiled = CompiledRule(rule, when, clear, value, threshold, message, causes, (), ())
    roles: list[str] = list(rule.clock)
    for program in compiled.programs:
        roles.extend(role for role in program.roles if role not in roles)
    clock = rule.clock or tuple(role for role in when.roles)
    return dataclasses.replace(compiled, clock=clock, roles=tuple(roles))


# ---------------------------------------------------------------------------------------------
# Loading


class _RuleError(Exception):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


def load_rules(user_dir: Path | None = None) -> tuple[list[Rule], list[str]]:
    """The built-in rules, changed by the YAML files in `user_dir` (if given); plus error messages."""
    errors: list[str] = []
    files = [
        (f"rlhf_tui/rules/catalog/{entry.name}", entry.read_text(encoding="utf-8"))
        for entry in sorted(resources.files("rlhf_tui.rules").joinpath("catalog").iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".yaml")
    ]
    rules = _merge(files, {}, errors, builtin=True)
    if user_dir is not None:
        directory = Path(user_dir)
        if not directory.is_dir():
            errors.append(f"{directory}: not a directory of rule files")
        else:
            user_files = []
            for path in sorted(directory.iterdir()):
                if path.suffix not in (".yaml", ".yml") or not path.is_file():
                    continue
                try:
                    user_files.append((str(path), path.read_text(encoding="utf-8")))
                except (OSError, UnicodeDecodeError) as error:
                    errors.append(f"{path}: cannot read: {error}")
            rules = _merge(user_files, rules, errors, builtin=False)
    ordered = order_by_suppression(list(rules.values()), errors)
    return ordered, errors


def _merge(files: list[tuple[str, str]], rules: dict[str, Rule], errors: list[str], builtin: bool) -> dict[str, Rule]:
    rules = dict(rules)
    parsed = []
    for path, text in files:
        document = _read_document(path, text, errors)
        if document is not None:
            parsed.append((path, *document))
    for path, data, lines in parsed:
        for index, entry in enumerate(data.get("rules") or []):
            line = lines["rules"][index] if index < len(lines["rules"]) else lines["file"]
            try:
                rule = _build_rule(entry, f"{path}:{line[0]}", line)
                _check(rule)
            except (_RuleError, ConditionError) as error:
                errors.append(_located(path, entry, error, line))
                continue
            if builtin and rule.id in rules:
                errors.append(f"{path}:{line[0]}: rule {rule.id!r}: duplicate id")
                continue
            rules[rule.id] = rule
    for path, data, lines in parsed:
        for rule_id, changes in (data.get("override") or {}).items():
            line = lines["override"].get(rule_id, lines["file"])
            if rule_id not in rules:
                errors.append(f"{path}:{line[0]}: override of unknown rule {rule_id!r}")
                continue
            try:
                rule = _override(rules[rule_id], changes, line)
                _check(rule)
            except (_RuleError, ConditionError) as error:
                errors.append(_located(path, {"id": rule_id}, error, line))
                continue
            rules[rule_id] = rule
    for path, data, lines in parsed:
        for index, rule_id in enumerate(data.get("disable") or []):
            line = lines["disable"][index] if index < len(lines["disable"]) else lines["file"][0]
            if rules.pop(str(rule_id), None) is None:
                errors.append(f"{path}:{line}: disable of unknown rule {rule_id!r}")
    return rules


def _located(path: str, entry: Any, error: Exception, line: tuple[int, dict[str, int]]) -> str:
    rule_id = entry.get("id") if isinstance(entry, dict) else None
    where = error.line if isinstance(error, _RuleError) else _field_line(error, line)
    label = f"rule {rule_id!r}: " if rule_id else ""
    return f"{path}:{where}: {label}{error}"


def _field_line(error: Exception, line: tuple[int, dict[str, int]]) -> int:
    """The line of the field a ConditionError names ("when: ..."), else the rule's line."""
    name = str(error).split(":", 1)[0]
    return line[1].get(name, line[0])


def _read_document(path: str, text: str, errors: list[str]):
    """(data, lines) of one rule file, or None after reporting why it cannot be used."""
    try:
        data, root = _parse_yaml(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f"{mark.line + 1}" if mark is not None else "1"
        problem = getattr(error, "problem", None) or str(error)
        errors.append(f"{path}:{line}: not valid YAML: {problem}")
        return None
    if data is None:
        return {}, {"rules": [], "override": {}, "disable": [], "file": (1, {})}
    if not isinstance(data, dict):
        errors.append(f"{path}:1: expected a mapping with 'rules', 'override' or 'disable'")
        return None
    unknown = set(map(str, data)) - _FILE_KEYS
    if unknown:
        errors.append(f"{path}:1: unknown top-level key(s) {sorted(unknown)}; expected rules, override, disable")
    lines: dict[str, Any] = {"rules": [], "override": {}, "disable": [], "file": (1, {})}
    for key_node, value_node in root.value:
        if key_node.value == "rules" and isinstance(value_node, yaml.SequenceNode):
            lines["rules"] = [_node_lines(item) for item in value_node.value]
        elif key_node.value == "override" and isinstance(value_node, yaml.MappingNode):
            lines["override"] = {k.value: _node_lines(v, k) for k, v in value_node.value}
        elif key_node.value == "disable" and isinstance(value_node, yaml.SequenceNode):
            lines["disable"] = [item.start_mark.line + 1 for item in value_node.value]
    for key, kind in (("rules", list), ("override", dict), ("disable", list)):
        if data.get(key) is not None and not isinstance(data[key], kind):
            errors.append(f"{path}:1: {key!r} must be a {'list' if kind is list else 'mapping'}")
            data[key] = None
    return data, lines


def _parse_yaml(text: str):
    """The data and the node tree of a YAML document, from one parse.

    This is what yaml.safe_load does (the safe loader: plain data only, no object construction),
    with the C parser when libyaml is installed (9x faster, and the catalogue is read at every
    start) and keeping the node tree, whose marks give the line numbers of rules and fields.
    """
    loader = _SAFE_LOADER(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    finally:
        loader.dispose()
    return data, root


def _node_lines(node, key_node=None) -> tuple[int, dict[str, int]]:
    start = (key_node or node).start_mark.line + 1
    fields = {}
    if isinstance(node, yaml.MappingNode):
        fields = {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
    return start, fields


def _build_rule(entry: Any, source: str, line: tuple[int, dict[str, int]]) -> Rule:
    if not isinstance(entry, dict):
        raise _RuleError("a rule must be a mapping", line[0])
    rule_id = entry.get("id")
    if not isinstance(rule_id, str) or not _ID.fullmatch(rule_id):
        raise _RuleError("'id' must be a word of letters, digits, '_', '-' or '.'", line[1].get("id", line[0]))
    for required in ("title", "severity", "when", "message"):
        if required not in entry:
            raise _RuleError(f"missing {required!r}", line[0])
    return _apply_fields(Rule(id=rule_id, title="", severity="low", when="", message="", source=source), entry, line)


def _override(rule: Rule, changes: Any, line: tuple[int, dict[str, int]]) -> Rule:
    if not isinstance(changes, dict):
        raise _RuleError("an override must be a mapping of fields", line[0])
    if "id" in changes:
        raise _RuleError("an override cannot change 'id'", line[1].get("id", line[0]))
    merged = dict(changes)
    if "params" in merged and isinstance(merged["params"], dict):
        merged["params"] = {**rule.params, **merged["params"]}
    if "trainer_params" in merged and isinstance(merged["trainer_params"], dict):
        merged["trainer_params"] = {**rule.trainer_params, **merged["trainer_params"]}
    return _apply_fields(rule, merged, line)


def _apply_fields(rule: Rule, entry: dict, line: tuple[int, dict[str, int]]) -> Rule:
    changes: dict[str, Any] = {}
    for key, value in entry.items():
        where = line[1].get(str(key), line[0])
        if key not in _RULE_FIELDS:
            raise _RuleError(f"unknown field {key!r}", where)
        if key == "id":
            continue
        try:
            changes.update(_field(str(key), value))
        except ValueError as error:
            raise _RuleError(f"{key}: {error}", where) from None
    return dataclasses.replace(rule, **changes)


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be non-empty text")
    return value.strip()


def _whole(value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"must be a whole number >= {minimum}")
    return value


def _words(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) and item for item in items):
        raise ValueError("must be a word or a list of words")
    return tuple(items)


def _numbers(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ValueError("must be a mapping of name: number")
    out = {}
    for name, number in value.items():
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not isinstance(name, str):
            raise ValueError(f"{name!r} must be a number")
        out[name] = float(number)
    return out


def _field(key: str, value: Any) -> dict[str, Any]:
    if key in ("title", "when", "message"):
        return {key: _text(value)}
    if key in ("reference", "action"):
        return {key: _text(value)}
    if key in ("clear", "value"):
        return {key: None if value is None else _text(value)}
    if key == "severity":
        if value not in SEVERITIES:
            raise ValueError(f"must be one of {', '.join(SEVERITIES)}")
        return {"severity": value}
    if key == "scope":
        if value not in ("points", "run"):
            raise ValueError("must be 'points' or 'run'")
        return {"scope": value}
    if key == "trainers":
        return {"trainers": None if value == "all" else _words(value)}
    if key == "for":
        return {"for_points": _whole(value, 1)}
    if key == "warmup":
        return {"warmup": _whole(value, 0)}
    if key == "clear_after":
        return {"clear_after": _whole(value, 1)}
    if key == "clock":
        roles = _words(value)
        unknown = [role for role in roles if role not in ROLES]
        if unknown:
            raise ValueError(f"unknown role(s) {unknown}")
        return {"clock": roles}
    if key == "suppresses":
        return {"suppresses": _words(value)}
    if key == "threshold":
        if not isinstance(value, dict) or set(value) != {"role", "value"} or value["role"] not in ROLES:
            raise ValueError("must be a mapping {role: <metric role>, value: <expression>}")
        return {"threshold_role": value["role"], "threshold_value": _text(str(value["value"]))}
    if key == "causes":
        if not isinstance(value, list):
            raise ValueError("must be a list of {when, text, action}")
        causes = []
        for item in value:
            if not isinstance(item, dict) or not {"when", "text"} <= set(item) <= {"when", "text", "action"}:
                raise ValueError("each cause is a mapping {when, text[, action]}")
            action = _text(item["action"]) if "action" in item else None
            causes.append(Cause(_text(item["when"]), _text(item["text"]), action))
        return {"causes": tuple(causes)}
    if key == "params":
        return {"params": _numbers(value)}
    if key == "trainer_params":
        if not isinstance(value, dict):
            raise ValueError("must be a mapping of trainer: {name: number}")
        return {"trainer_params": {str(trainer): _numbers(numbers) for trainer, numbers in value.items()}}
    raise ValueError("unsupported field")


def _check(rule: Rule) -> None:
    """Compile the rule for its base params and every trainer override, so errors show at load."""
    clashes = [name for name in rule.params if name in ROLES]
    if clashes:
        raise ConditionError(f"params: {clashes} are metric roles; choose other names")
    for trainer in ("", *rule.trainer_params):
        compile_rule(rule, trainer)


def order_by_suppression(rules: list[Rule], errors: list[str]) -> list[Rule]:
    """Rules ordered so that every suppressor comes before the rules it suppresses."""
    by_id = {rule.id: rule for rule in rules}
    for rule in rules:
        for target in rule.suppresses:
            if target != "*" and target not in by_id:
                errors.append(f"{rule.source}: rule {rule.id!r}: suppresses unknown rule {target!r}")
    ordered: list[Rule] = []
    state: dict[str, str] = {}

    def visit(rule: Rule, path: tuple[str, ...]) -> None:
        if state.get(rule.id) == "done":
            return
        if state.get(rule.id) == "visiting":
            errors.append(f"{rule.source}: suppression cycle {' -> '.join((*path, rule.id))}; ignoring it")
            return
        state[rule.id] = "visiting"
        for suppressor in rules:
            if suppressor is not rule and suppressor.suppresses_rule(rule):
                visit(suppressor, (*path, rule.id))
        state[rule.id] = "done"
        ordered.append(rule)

    for rule in rules:
        visit(rule, ())
    return ordered
