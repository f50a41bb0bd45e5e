"""Every YAML and JSON file under deploy/ loads."""

from __future__ import annotations

import json

import pytest

from tests.deploy.conftest import DEPLOY, load_all


@pytest.mark.parametrize("path", sorted(DEPLOY.rglob("*.y*ml")), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_file_when_loaded_then_parses_into_documents(path):
    assert load_all(path), f"{path} has no YAML document"


@pytest.mark.parametrize("path", sorted(DEPLOY.rglob("*.json")), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_json_file_when_loaded_then_parses(path):
    assert isinstance(json.loads(path.read_text()), dict | list)
