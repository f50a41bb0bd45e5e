"""Snapshots: snapshot + tail equals a full rebuild for every core; a bad snapshot is never restored."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.snapshots import (
    FORMAT_VERSION,
    Expected,
    InvalidSnapshot,
    SnapshotHeader,
    decode_snapshot,
    encode_snapshot,
    state_digest,
)
from tests.processors._recorded_run import CORES, CoreSpec, fold, recorded_run


def _expected(spec: CoreSpec, version: int = 1) -> Expected:
    return Expected(processor=spec.name, partition="0/1", state_version=version, origin=state_digest(spec.fresh()))


def _header(spec: CoreSpec, cut: int, version: int = 1) -> SnapshotHeader:
    expected = _expected(spec, version)
    return SnapshotHeader(format=FORMAT_VERSION, processor=spec.name, partition="0/1", state_version=version,
                          origin=expected.origin, positions={"SQ_MD": cut}, generation=1, last_stored_ts=0,
                          events=cut)


def _fold(spec: CoreSpec, state: Any, envelopes: Any) -> tuple[Any, list[str]]:
    ids: list[str] = []
    for envelope in envelopes:
        if spec.wanted(envelope.subject):
            state, outputs = fold(spec, state, envelope.event)
            ids.extend(output.id for output in outputs)
    return state, ids


@pytest.fixture(scope="module")
def full_rebuilds() -> dict[str, tuple[str, list[str]]]:
    """Per core: the digest of its state after the whole run, and every output id, from the first record."""
    log = recorded_run()
    out = {}
    for spec in CORES:
        state, ids = _fold(spec, spec.fresh(), log)
        out[spec.name] = (state_digest(state), ids)
    return out


@pytest.mark.parametrize("spec", CORES, ids=[spec.name for spec in CORES])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_snapshot_at_any_cut_plus_tail_equals_full_rebuild(spec: CoreSpec, data: st.DataObject,
                                                           full_rebuilds: dict[str, tuple[str, list[str]]]) -> None:
    log = recorded_run()
    cut = data.draw(st.integers(min_value=0, max_value=len(log)), label="cut")
    head, head_ids = _fold(spec, spec.fresh(), log[:cut])
    blob = encode_snapshot(_header(spec, cut), head)
    header, restored = decode_snapshot(blob, _expected(spec))
    assert header.positions == {"SQ_MD": cut}
    final, tail_ids = _fold(spec, restored, log[cut:])
    digest, ids = full_rebuilds[spec.name]
    assert state_digest(final) == digest, f"{spec.name}: state from snapshot at {cut} + tail differs"
    assert head_ids + tail_ids == ids, f"{spec.name}: outputs from snapshot at {cut} + tail differ"


def test_every_core_changes_state_over_the_run(full_rebuilds: dict[str, tuple[str, list[str]]]) -> None:
    """The property above would hold trivially for a core the run never touched."""
    for spec in CORES:
        assert full_rebuilds[spec.name][0] != state_digest(spec.fresh()), f"{spec.name} unchanged by the run"
    assert full_rebuilds["risk"][1] and full_rebuilds["router"][1] and full_rebuilds["venue-sim"][1]


def _small_snapshot() -> tuple[CoreSpec, bytes, str]:
    spec = next(spec for spec in CORES if spec.name == "risk")
    state, _ = _fold(spec, spec.fresh(), recorded_run()[:120])
    return spec, encode_snapshot(_header(spec, 120), state), state_digest(state)


def test_every_single_bit_flip_is_detected() -> None:
    spec, blob, digest = _small_snapshot()
    expected = _expected(spec)
    assert state_digest(decode_snapshot(blob, expected)[1]) == digest
    flipped = bytearray(blob)
    for bit in range(len(blob) * 8):
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(InvalidSnapshot):
            decode_snapshot(bytes(flipped), expected)
        flipped[bit // 8] ^= 1 << (bit % 8)
    assert len(blob) > 1000, "a snapshot of a real state, not a toy"


def test_truncated_snapshot_is_refused() -> None:
    spec, blob, _ = _small_snapshot()
    for size in (0, 5, 12, len(blob) // 2, len(blob) - 1):
        with pytest.raises(InvalidSnapshot):
            decode_snapshot(blob[:size], _expected(spec))


def test_snapshot_of_another_state_version_config_or_owner_is_refused() -> None:
    spec, blob, _ = _small_snapshot()
    with pytest.raises(InvalidSnapshot) as version:
        decode_snapshot(blob, _expected(spec, version=2))
    assert version.value.reason == "state_version"
    other_config = Expected(processor="risk", partition="0/1", state_version=1, origin="0" * 64)
    with pytest.raises(InvalidSnapshot) as config:
        decode_snapshot(blob, other_config)
    assert config.value.reason == "config"
    with pytest.raises(InvalidSnapshot) as owner:
        decode_snapshot(blob, Expected(processor="risk", partition="1/2", state_version=1,
                                       origin=_expected(spec).origin))
    assert owner.value.reason == "owner"


class _Payload:
    def __reduce__(self) -> tuple[Any, ...]:
        import os

        return (os.system, ("true",))


def test_a_snapshot_that_would_run_code_is_refused() -> None:
    spec = CORES[0]
    blob = encode_snapshot(_header(spec, 0), {"state": _Payload()})
    with pytest.raises(InvalidSnapshot) as refused:
        decode_snapshot(blob, _expected(spec))
    assert refused.value.reason == "body" and "system" in refused.value.detail


def test_digest_ignores_dict_and_set_order_but_not_content() -> None:
    assert state_digest({"a": 1, "b": {2, 3}}) == state_digest({"b": {3, 2}, "a": 1})
    assert state_digest({"a": 1}) != state_digest({"a": 2})
    assert pickle.loads(pickle.dumps({"a": 1})) == {"a": 1}
