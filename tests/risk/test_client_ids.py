"""Client order ids in compact slices: the same answers as a plain dict within the window, bounded after it."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.risk.client_ids import MAX_SLICE_NS, ClientOrderIds, id_hash
from processors.snapshots import state_digest

WINDOW = 1_000
uses = st.lists(st.tuples(st.sampled_from([f"c{n}" for n in range(30)]),   # client order id
                          st.integers(0, 2**64 - 1),                        # intent fingerprint
                          st.integers(0, 400)),                             # ts step (some equal)
                min_size=1, max_size=300)


@settings(max_examples=150, deadline=None)
@given(uses, st.sampled_from([4, WINDOW, 10 * WINDOW]))
def test_answers_as_a_dict_of_last_uses_within_the_window_and_forgets_within_one_slice_more(
        steps: list[tuple[str, int, int]], window: int) -> None:
    ids = ClientOrderIds(window)
    last: dict[str, tuple[int, int]] = {}
    times: list[int] = []
    ts = 10**12
    for client_order_id, fingerprint, step in steps:
        ts += step
        ids.set(client_order_id, fingerprint, ts)
        last[client_order_id] = (fingerprint, ts)
        times.append(ts)
        for known, (used_by, used_at) in last.items():
            found = ids.get(known)
            if used_at > ts - window:
                assert found == (used_by, used_at), known       # remembered for at least the window
            else:
                assert found in (None, (used_by, used_at)), known   # never an older use, never another id's
        # Nothing is kept a slice past the window (an id reused in the open slice may count twice until it closes).
        assert len(ids) <= sum(1 for used_at in times if used_at > ts - window - ids.slice_ns)


def test_an_id_never_used_is_unknown_and_a_reuse_replaces_the_older_entry() -> None:
    ids = ClientOrderIds(86_400 * 10**9)
    assert ids.get("never") is None
    ids.set("a", 1, 10**18)
    ids.set("a", 2, 10**18 + 600 * 10**9)           # after the first slice closed: the older entry is replaced
    ids.set("b", 3, 10**18 + 1200 * 10**9)
    assert ids.get("a") == (2, 10**18 + 600 * 10**9) and len(ids) == 2
    assert ids.slice_ns == MAX_SLICE_NS


def test_it_survives_a_snapshot_and_its_digest_follows_its_content() -> None:
    ids = ClientOrderIds(3_600 * 10**9)
    for n in range(1_000):
        ids.set(f"order-{n}", id_hash(f"intent-{n}"), 10**18 + n * 10**9)
    copy = pickle.loads(pickle.dumps(ids))
    assert all(copy.get(f"order-{n}") == ids.get(f"order-{n}") for n in range(1_000))
    assert state_digest(copy) == state_digest(ids)
    copy.set("another", 1, 10**18 + 2_000 * 10**9)
    assert state_digest(copy) != state_digest(ids)


def test_a_window_that_is_not_positive_is_refused() -> None:
    with pytest.raises(ValueError, match="window_ns"):
        ClientOrderIds(0)
