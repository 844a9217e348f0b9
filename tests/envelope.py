"""The JSON envelope of every command, parsed and checked against replicator/schema/envelope.schema.json.

Every test that reads a `--json` document goes through `parse`, so a field that drifts from the
published schema fails the test that produced it.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema


@cache
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(resources.files("replicator").joinpath("schema/envelope.schema.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def check(document: dict[str, Any]) -> dict[str, Any]:
    """`document` if it is a valid envelope; AssertionError naming every violation otherwise."""
    errors = sorted(validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "envelope does not match its schema:\n" + "\n".join(
        f"- {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors
    )
    return document


def parse(out: str) -> dict[str, Any]:
    """The one JSON document a command printed on stdout, checked against the schema."""
    return check(json.loads(out))
