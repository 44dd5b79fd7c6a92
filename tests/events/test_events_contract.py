"""The event contract: schema files, and the fast validator agreeing with jsonschema."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from events_simulation import SimulatedLog
from jsonschema import Draft202012Validator

from pipelines.events.contract import (
    DECISION_FIELDS,
    EXTRA_FIELD,
    FEATURE_SET_VERSION,
    OUTCOME_FIELDS,
    RECORD_FIELD,
    STRATEGY_OF_ARM,
    event_kind,
    load_schema,
    validate_decisions,
    validate_outcomes,
    validate_reference,
)
from pipelines.features.names import FEATURE_NAMES
from pipelines.strategies.signals import ARM_NAMES

DOCS = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def test_schema_files_are_valid_draft_2020_12_and_match_the_code() -> None:
    dec, out = load_schema("decision"), load_schema("outcome")
    for schema in (dec, out):
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    props = dec["properties"]
    assert props["arm"]["enum"] == list(ARM_NAMES)
    assert props["features"]["minItems"] == props["features"]["maxItems"] == len(FEATURE_NAMES)
    assert props["feature_set"]["const"] == FEATURE_SET_VERSION
    assert set(props) == set(DECISION_FIELDS)
    assert set(out["properties"]) == set(OUTCOME_FIELDS)
    pairs = {
        c["if"]["properties"]["arm"]["const"]: c["then"]["properties"]["strategy_id"]["const"]
        for c in dec["allOf"]
    }
    assert pairs == STRATEGY_OF_ARM


def _fast(record: Any) -> tuple[str, str] | None:
    kind = event_kind(record)
    if kind is None:
        return validate_reference(record)  # non-events: one shared rule, no columns to check
    res = (validate_decisions if kind == "decision" else validate_outcomes)([record])
    if len(res.rows) == 1:
        return None
    return res.problems[0].field, res.problems[0].reason


_WRONG_TYPES: tuple[Any, ...] = ("x", 1, 0.5, True, None, [], {})


def _mutations(dec: dict[str, Any], out: dict[str, Any]) -> list[tuple[Any, str | None]]:
    """(record, expected field or None) pairs: the good records, then single defects."""
    cases: list[tuple[Any, str | None]] = [(dec, None), (out, None)]
    for base, fields in ((dec, DECISION_FIELDS), (out, OUTCOME_FIELDS)):
        for f in fields:
            if f in base:
                r = copy.deepcopy(base)
                del r[f]
                optional = ("features", "action_distribution", "engine")
                cases.append((r, None if f in optional else f))
            for v in _WRONG_TYPES:
                r = copy.deepcopy(base)
                r[f] = v
                # a null regime (the classifier fell back) and an empty engine note are valid
                valid = (f, v) in (("regime", None),) or (f in ("engine", "models") and v == {})
                cases.append((r, None if valid else "?"))
        r = copy.deepcopy(base)
        r["unexpected"] = 1
        cases.append((r, EXTRA_FIELD))
    bad_values: list[tuple[str, Any, str]] = [
        ("propensity", 0.0, "propensity"),
        ("propensity", 1.0000001, "propensity"),
        ("propensity", -0.1, "propensity"),
        ("ts", "2024-01-01T00:00:00", "ts"),
        ("ts", "2024-13-01T00:00:00Z", "ts"),
        ("ts", "2024-02-30T00:00:00+02:00", "ts"),
        ("ts", "2024-01-01 00:00:00Z", "ts"),
        ("ts", "2024-01-01T00:00:00.123456789-05:30", None),
        ("event_id", "", "event_id"),
        ("event_id", "-leading-dash", "event_id"),
        ("event_id", "x" * 129, "event_id"),
        ("symbol", "", "symbol"),
        ("symbol", "S" * 65, "symbol"),
        ("strategy_id", "S7", "strategy_id"),
        ("strategy_id", "S15", "strategy_id"),
        ("arm", "ema_1_2", "arm"),
        ("arm", "ema_12_48", "strategy_id"),
        ("feature_set", "edgeflow.features/2", "feature_set"),
        ("features", [0.0] * 42, "features"),
        ("features", [0.0] * 42 + ["1"], "features"),
        ("features", [0.0] * 42 + [True], "features"),
        ("features", None, None),
        ("features", [1] * 43, None),
        ("action_distribution", [1 / 12] * 11, "action_distribution"),
        ("action_distribution", [0.5] + [0.5 / 11] * 11, "?"),
        ("action_distribution", [1.5] + [0.0] * 11, "action_distribution"),
        ("action_distribution", [-0.1, 0.2] + [0.09] * 10, "action_distribution"),
        ("action_distribution", None, None),
        ("models", {}, None),  # every model fell back: nothing consulted
        ("models", {"regime": "v000001"}, None),  # the bandit fell back: not consulted
        ("models", {"bandit": "v1"}, "models"),
        ("models", {"bandit": "v000001", "oracle": "v000001"}, "models"),
        ("models", {"bandit": 1}, "models"),
        ("size_multiplier", 0.05, "size_multiplier"),
        ("size_multiplier", 2.5, "size_multiplier"),
        ("regime", "CALM", "regime"),
        ("changepoint_prob", 1.5, "changepoint_prob"),
        ("schema", "edgeflow.decision/2", "schema"),
    ]
    for f, v, expect in bad_values:
        r = copy.deepcopy(dec)
        r[f] = v
        cases.append((r, expect))
    bad_outcomes: list[tuple[str, Any, str | None]] = [
        ("holding_bars", -1, "holding_bars"),
        ("holding_bars", 2.5, "holding_bars"),
        ("holding_bars", 3.0, None),
        ("fees", -0.01, "fees"),
        ("currency", "usd", "currency"),
        ("currency", "USDT", None),
        ("exit_reason", "panic", "exit_reason"),
        ("closed_at", "yesterday", "closed_at"),
        ("decision_id", "a b", "decision_id"),
        ("net_return", "0.1", "net_return"),
    ]
    for f, v, expect in bad_outcomes:
        r = copy.deepcopy(out)
        r[f] = v
        cases.append((r, expect))
    cases += [(x, RECORD_FIELD) for x in ([dec], "text", 3, None)]
    return cases


def test_fast_validator_agrees_with_jsonschema_on_a_corpus(sim_log: SimulatedLog) -> None:
    dec, out = sim_log.decisions[5], sim_log.outcomes[5]
    cases = _mutations(dec, out)
    assert len(cases) > 200
    disagreements = []
    for record, expected in cases:
        ref, fast = validate_reference(record), _fast(record)
        if (ref is None) != (fast is None) or (ref and fast and ref[0] != fast[0]):
            disagreements.append((record, ref, fast))
        if expected is None:
            assert ref is None, (record, ref)
        elif expected != "?":
            assert ref is not None and ref[0] == expected, (record, ref)
    assert not disagreements, disagreements[:3]


def test_batch_validation_keeps_good_rows_and_names_bad_ones(sim_log: SimulatedLog) -> None:
    good = sim_log.decisions[:50]
    bad = copy.deepcopy(sim_log.decisions[50])
    bad["propensity"] = 0.0
    res = validate_decisions([*good[:10], bad, *good[10:]])
    assert len(res.frame) == 50 and list(res.rows) == [*range(10), *range(11, 51)]
    assert [(p.index, p.field) for p in res.problems] == [(10, "propensity")]
    assert res.frame["arm_name"].tolist() == [d["arm"] for d in good]
    feats = res.frame[list(FEATURE_NAMES)].to_numpy()
    assert feats[3].tolist() == pytest.approx(good[3]["features"], rel=1e-6)


def _doc_examples() -> list[dict[str, Any]]:
    text = DOCS.read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", text, flags=re.S)
    return [json.loads(b) for b in blocks]


def test_documented_examples_are_valid_events() -> None:
    examples = _doc_examples()
    kinds = [event_kind(e) for e in examples]
    assert "decision" in kinds and "outcome" in kinds
    shadow = json.loads((DOCS.parents[1] / "schemas" / "events" / "shadow-1.json").read_text())
    assert any(e.get("schema") == "edgeflow.shadow/1" for e in examples)
    for e in examples:
        if e.get("schema") == "edgeflow.shadow/1":  # the shadow log, not the decision log
            Draft202012Validator(shadow).validate(e)
            continue
        assert validate_reference(e) is None, e
        assert _fast(orjson.loads(orjson.dumps(e))) is None, e
