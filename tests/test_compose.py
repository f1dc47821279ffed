"""docker-compose.yml is valid Compose (Docker does not run here, so the schema is the check)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from worker.settings import PROJECT_ROOT


def _validator() -> jsonschema.Draft7Validator:
    """The schema says draft-07 (by an https address jsonschema does not know, hence explicit)."""
    return jsonschema.Draft7Validator(json.loads((Path(__file__).parent / "schemas" / "compose-spec.json").read_text()))


def test_compose_file_follows_the_compose_specification():
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    _validator().validate(compose)
    assert "herald demo" in " ".join(compose["services"]["herald"]["command"])


def test_compose_validation_rejects_a_broken_file():
    broken = {"services": {"herald": {"image": "python:3.12-slim", "volumes": "not-a-list", "bogus": 1}}}
    with pytest.raises(jsonschema.ValidationError):
        _validator().validate(broken)
