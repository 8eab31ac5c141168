"""The JSON Schema of runbooks (``drkit.runbook_schema()``, ``drkit runbook schema``) and
the check every plan starts with (``drkit.check_runbook``) give the same verdict on every
runbook of ``tests/runbooks``, ``examples/runbooks`` and ``docs/runbooks.md``, read with a
real JSON Schema validator. The bad runbooks whose problems no schema can express
(references, the graph of needs, unique ids, each action's parameters) say so in their
header: the schema passes them, the check refuses them."""

from __future__ import annotations

import pathlib
import re

import jsonschema
import pytest
import yaml

import drkit

ROOT = pathlib.Path(__file__).resolve().parents[2]


def documented(tmp: pathlib.Path) -> list[pathlib.Path]:
    """Every complete runbook of docs/runbooks.md (a yaml block starting `version: 1`)."""
    docs = (ROOT / "docs" / "runbooks.md").read_text()
    out = []
    for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", docs, re.S)):
        if block.startswith("version: 1"):
            f = tmp / f"docs-{i}.yaml"
            f.write_text(block)
            out.append(f)
    return out


def corpus(tmp: pathlib.Path) -> list[pathlib.Path]:
    files = sorted((ROOT / "tests" / "runbooks" / "bad").glob("*.yaml"))
    files += sorted((ROOT / "tests" / "runbooks" / "good").glob("*.yaml"))
    files += sorted((ROOT / "examples" / "runbooks").rglob("*.yaml"))
    return files + documented(tmp)


def schema_accepts(validator: jsonschema.protocols.Validator, path: pathlib.Path) -> tuple[bool, list[str]]:
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        return False, [str(e)]
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]
    return not errors, errors


def check_accepts(path: pathlib.Path) -> tuple[bool, list[str]]:
    try:
        result = drkit.check_runbook(path)
    except drkit.InvalidInputError as e:
        return False, [str(e)]
    return result["ok"], [p["message"] for p in result["problems"]]


def test_the_schema_and_the_check_agree_on_every_runbook(tmp_path: pathlib.Path) -> None:
    schema = drkit.runbook_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    files = corpus(tmp_path)
    assert len([f for f in files if "/bad/" in str(f)]) >= 10
    disagreements = []
    for path in files:
        header = path.read_text().splitlines()[:1]
        beyond = bool(header) and header[0].startswith("# schema: cannot see")
        by_schema, schema_errors = schema_accepts(validator, path)
        by_check, problems = check_accepts(path)
        bad = "/bad/" in str(path)
        assert by_check is not bad, f"{path}: check says {by_check}: {problems}"
        expected_schema = beyond or not bad
        if by_schema is not expected_schema:
            disagreements.append(f"{path.relative_to(ROOT) if ROOT in path.parents else path.name}: schema {'accepts' if by_schema else 'refuses'} ({schema_errors}), check {'accepts' if by_check else 'refuses'} ({problems})")
    assert not disagreements, "\n".join(disagreements)


@pytest.mark.parametrize(
    "field, value",
    [("timeout", 90), ("timeout", "1h30m"), ("timeout", 0.5), ("timeout", "soon"), ("timeout", -3), ("concurrency", 0), ("colour", "red")],
)
def test_one_field_at_a_time(tmp_path: pathlib.Path, field: str, value: object) -> None:
    """Small cases, each read by both: a duration as a number or in the grammar, and
    values either refuses."""
    doc = {"version": 1, "name": "one-field", "steps": [{"id": "a", "action": "wait", "with": {"for": "1s"}}], field: value}
    path = tmp_path / "one.yaml"
    path.write_text(yaml.safe_dump(doc))
    validator = jsonschema.Draft202012Validator(drkit.runbook_schema())
    by_schema, errors = schema_accepts(validator, path)
    by_check, problems = check_accepts(path)
    assert by_schema == by_check, (errors, problems)
    assert by_check == (field == "timeout" and value not in ("soon", -3)), problems
