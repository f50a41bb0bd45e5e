"""The house is straight: imports follow the layers, no module imports itself back, no module is too long.

The rules and the list of violations being fixed elsewhere live in tests/structure.py; `make structure`
prints the same findings with file:line.
"""

from __future__ import annotations

import pytest

from tests import structure


@pytest.fixture(scope="module")
def results() -> dict[str, list[structure.Violation]]:
    return structure.check()


def _unexpected(violations: list[structure.Violation]) -> list[str]:
    return [str(violation) for violation in violations if violation.key not in structure.KNOWN]


def test_no_import_runs_from_a_lower_layer_to_a_higher_one(results: dict[str, list[structure.Violation]]) -> None:
    assert _unexpected(results["layers"]) == []


def test_no_modules_import_each_other_in_a_cycle(results: dict[str, list[structure.Violation]]) -> None:
    assert _unexpected(results["cycles"]) == []


def test_no_module_is_over_the_line_limit(results: dict[str, list[structure.Violation]]) -> None:
    assert _unexpected(results["size"]) == []


def test_every_process_runs_from_the_folder_of_its_name(results: dict[str, list[structure.Violation]]) -> None:
    assert _unexpected(results["names"]) == []


def test_there_is_one_step(results: dict[str, list[structure.Violation]]) -> None:
    assert _unexpected(results["step"]) == []


def test_every_known_violation_still_occurs(results: dict[str, list[structure.Violation]]) -> None:
    _, stale = structure.verdict(results)
    assert stale == [], "fixed: delete these entries from structure.KNOWN"


def test_the_check_sees_an_import_hidden_in_a_function_body(tmp_path) -> None:
    for layer in structure.LAYERS:
        (tmp_path / layer).mkdir()
        (tmp_path / layer / "__init__.py").write_text("")
    (tmp_path / "store" / "low.py").write_text("def f():\n    from gateway import high\n")
    (tmp_path / "gateway" / "high.py").write_text("from store.low import f\n")
    known = structure.modules(tmp_path)
    found = list(structure.imports(known))
    layers = structure.layer_violations(found)
    cycles = structure.cycle_violations(found)
    assert [(v.key, v.line) for v in layers] == [(("layers", "store.low", "gateway.high"), 2)]
    assert {v.key for v in cycles} == {("cycles", "store.low", "gateway.high"), ("cycles", "gateway.high", "store.low")}


def test_the_step_check_sees_a_copied_fold_and_a_second_step(tmp_path) -> None:
    for layer in structure.LAYERS:
        (tmp_path / layer).mkdir()
        (tmp_path / layer / "__init__.py").write_text("")
    (tmp_path / "tests").mkdir()
    (tmp_path / "processors" / "fold.py").write_text(
        "def step(decide, evolve, state, event):\n    return evolve(state, event), decide(state, event)\n")
    (tmp_path / "processors" / "host.py").write_text("from processors.fold import step\n")
    (tmp_path / "processors" / "sim.py").write_text(
        "class Sim:\n    def step(self, event):\n        return event\n")
    (tmp_path / "tests" / "_replay.py").write_text(
        "def run(core, state, events):\n    for e in events:\n        core.decide(state, e)\n"
        "        state = core.evolve(state, e)\n")
    (tmp_path / "tests" / "test_core.py").write_text(
        "def test_evolve_alone(core, state, e):\n    assert core.decide(core.evolve(state, e), e) == []\n")
    found = structure.step_violations(structure.modules(tmp_path), root=tmp_path)
    assert sorted((v.key, v.line) for v in found) == [
        (("step", "processors.sim", "Sim.step"), 2), (("step", "tests._replay", "run"), 1)]
