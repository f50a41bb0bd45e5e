"""The event catalogue: round trips, validation at the edge, subjects, ids and published schemas."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import jsonschema
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events import (
    EVENT_TYPES,
    Event,
    EventDecodeError,
    OrderIntent,
    complete_intent,
    decode,
    decode_for_subject,
    derived_id,
    encode,
    intent_id_for,
    new_event_id,
    stream_for_subject,
    subject_for,
    subject_matches,
)
from events.ids import uuid7_time_ns
from events.schema import all_schemas
from tests.events.samples import TS, sample_events

CONTRACT_INTENT = {
    "id": "01936f7e-8c1a-7b2e-9d4f-3a5b6c7d8e9f", "account": "ACC1", "client_order_id": "strategy-7-0001",
    "symbol": "BTCUSDT", "venue": None, "side": "BUY", "quantity": "0.250", "limit_price": "43210.50",
    "time_in_force": "GTC", "algo": {"kind": "TWAP", "duration_s": 60, "slices": 6},
}


def _intent(**overrides: object) -> bytes:
    return json.dumps({**CONTRACT_INTENT, **overrides}).encode()


def test_every_catalogue_type_has_a_sample_that_round_trips_unchanged() -> None:
    samples = sample_events()
    assert {type(event) for event in samples} == set(EVENT_TYPES)
    for event in samples:
        assert decode(encode(event)) == event
        assert decode_for_subject(subject_for(event), encode(event)) == event


def test_catalogue_lists_every_event_class_once() -> None:
    def subclasses(cls: type) -> list[type]:
        return [sub for child in cls.__subclasses__() for sub in (child, *subclasses(child))]

    assert len(EVENT_TYPES) == len(set(EVENT_TYPES))
    assert set(subclasses(Event)) == set(EVENT_TYPES)


def test_money_travels_as_decimal_strings_with_exact_digits() -> None:
    intent = decode_for_subject("sq.ord.intent.ACC1", _intent())
    wire = json.loads(encode(intent))
    assert wire["quantity"] == "0.250" and wire["limit_price"] == "43210.50"
    assert intent.quantity == Decimal("0.250")


def test_contract_intent_from_readme_decodes_with_twap_algo() -> None:
    intent = decode_for_subject("sq.ord.intent.ACC1", _intent())
    assert isinstance(intent, OrderIntent)
    assert intent.algo_kind == "TWAP" and intent.algo is not None and intent.algo.slices == 6


@pytest.mark.parametrize(("overrides", "field_named"), [
    ({"quantity": "-1"}, "quantity"),
    ({"quantity": "0"}, "quantity"),
    ({"quantity": "NaN"}, "quantity"),
    ({"quantity": "1e400"}, "quantity"),
    ({"quantity": "0.0000000000001"}, "quantity"),
    ({"quantity": 7}, None),
    ({"limit_price": "-3"}, "limit_price"),
    ({"algo": {"kind": "ICEBERG"}}, "$.algo.kind"),
    ({"algo": {"kind": "TWAP", "duration_s": 60}}, "slices"),
    ({"algo": {"kind": "TWAP", "duration_s": -5, "slices": 2}}, "$.algo.duration_s"),
    ({"algo": {"kind": "POV", "rate": 1.5}}, "$.algo.rate"),
    ({"symbol": "BTC.USDT"}, "$.symbol"),
    ({"symbol": "BTC>"}, "$.symbol"),
    ({"side": "HOLD"}, "$.side"),
    ({"colour": "red"}, "colour"),
    ({"quantity": ["1"]}, "$.quantity"),
])
def test_intent_with_nonsense_is_rejected_naming_the_field(overrides: dict[str, object],
                                                           field_named: str | None) -> None:
    if field_named is None:
        # A JSON number is an exact decimal literal: accepted, and kept exact.
        assert decode_for_subject("sq.ord.intent.ACC1", _intent(**overrides)).quantity == Decimal(7)
        return
    with pytest.raises(EventDecodeError) as caught:
        decode_for_subject("sq.ord.intent.ACC1", _intent(**overrides))
    assert field_named in caught.value.reason


def test_limit_algo_without_limit_price_is_rejected() -> None:
    with pytest.raises(EventDecodeError, match="limit_price is required"):
        decode_for_subject("sq.ord.intent.ACC1", _intent(limit_price=None, algo={"kind": "LIMIT"}))


def test_intent_on_another_accounts_subject_is_rejected() -> None:
    with pytest.raises(EventDecodeError, match="belongs on sq.ord.intent.ACC2"):
        decode_for_subject("sq.ord.intent.ACC1", _intent(account="ACC2"))


def test_garbage_bytes_are_a_decode_error_not_a_crash() -> None:
    with pytest.raises(EventDecodeError, match="malformed"):
        decode_for_subject("sq.md.trade.BINANCE.BTCUSDT", b"\x00\xffnot json")


def test_events_are_validated_when_built_and_intents_when_decoded_but_our_own_events_not_again() -> None:
    trade = next(event for event in sample_events() if type(event).__name__ == "Trade")
    with pytest.raises(ValueError, match="price 0 must be greater than 0"):
        msgspec.structs.replace(trade, price=Decimal(0))
    # A processor built this trade, so its checks ran then; decoding it downstream only types it.
    wire = encode(trade).replace(f'"price":"{trade.price}"'.encode(), b'"price":"0"')
    assert decode_for_subject(subject_for(trade), wire).price == 0
    # msgspec's own constraints (types, token patterns) still apply on that path.
    with pytest.raises(EventDecodeError, match=r"\$\.symbol"):
        decode_for_subject(subject_for(trade), encode(trade).replace(trade.symbol.encode(), b"BTC USDT"))
    # Intents come from outside: fully checked on decode, and the skip does not leak past a decode.
    with pytest.raises(EventDecodeError, match="quantity 0 must be greater than 0"):
        decode_for_subject("sq.ord.intent.ACC1", _intent(account="ACC1", quantity="0"))
    with pytest.raises(ValueError, match="price 0 must be greater than 0"):
        msgspec.structs.replace(trade, price=Decimal(0))


def test_an_event_on_a_subject_of_another_type_is_refused() -> None:
    trade = next(event for event in sample_events() if type(event).__name__ == "Trade")
    with pytest.raises(EventDecodeError, match=r"\$\.type"):
        decode_for_subject("sq.exec.report.sim.ACC1", encode(trade))


def test_internal_events_tolerate_unknown_fields_from_newer_writers() -> None:
    trade = sample_events()[0]
    wire = json.loads(encode(trade))
    wire["added_in_v2"] = {"anything": 1}
    assert decode(json.dumps(wire).encode()) == trade


def test_intent_without_id_and_ts_is_completed_deterministically() -> None:
    without_id = json.dumps({k: v for k, v in CONTRACT_INTENT.items() if k != "id"}).encode()
    raw = decode_for_subject("sq.ord.intent.ACC1", without_id)
    assert isinstance(raw, OrderIntent) and raw.id == "" and raw.ts == 0
    first, second = complete_intent(raw, 123), complete_intent(raw, 123)
    assert first == second
    assert first.id == intent_id_for("ACC1", "strategy-7-0001") and first.ts == 123
    given = decode_for_subject("sq.ord.intent.ACC1", _intent())
    assert complete_intent(given, 5).id == CONTRACT_INTENT["id"]


def test_derived_ids_are_stable_and_distinct_by_role_and_index() -> None:
    parent = new_event_id()
    assert derived_id(parent, "child", 0) == derived_id(parent, "child", 0)
    assert len({derived_id(parent, "child", i) for i in range(100)} | {derived_id(parent, "risk", 0)}) == 101


def test_new_event_ids_sort_by_creation_time() -> None:
    ids = [new_event_id(TS + i * 1_000_000) for i in range(50)]
    assert ids == sorted(ids)
    assert uuid7_time_ns(ids[3]) == TS + 3_000_000


def test_each_event_maps_to_a_subject_inside_its_stream() -> None:
    expected_streams = {"Trade": "SQ_MD", "OrderIntent": "SQ_TRADING", "ExecutionReport": "SQ_TRADING",
                        "AuditEvent": "SQ_AUDIT", "DeadLetter": "SQ_AUDIT", "KillSwitchEngaged": "SQ_TRADING"}
    for event in sample_events():
        stream = stream_for_subject(subject_for(event))
        assert expected_streams.get(type(event).__name__, stream.name) == stream.name
    assert subject_for(sample_events()[4]) == "sq.md.bar.1m.BINANCE.BTCUSDT"


@pytest.mark.parametrize(("pattern", "subject", "matches"), [
    ("sq.md.>", "sq.md.trade.X.Y", True), ("sq.md.>", "sq.md", False), ("sq.*.trade.X.Y", "sq.md.trade.X.Y", True),
    ("sq.md.trade.*", "sq.md.trade.X.Y", False), ("sq.ord.intent.ACC1", "sq.ord.intent.ACC1", True),
])
def test_subject_wildcards_follow_nats_rules(pattern: str, subject: str, matches: bool) -> None:
    assert subject_matches(pattern, subject) is matches


def test_each_published_schema_accepts_its_sample_and_rejects_a_broken_one() -> None:
    schemas = all_schemas()
    assert set(schemas) == {t.__name__ for t in EVENT_TYPES}
    for event in sample_events():
        schema = schemas[type(event).__name__]
        instance = json.loads(encode(event))
        jsonschema.validate(instance, schema)
        broken = dict(instance)
        broken["id"] = 12345  # wrong type for a field every event has
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)


def test_intent_schema_accepts_the_readme_contract_and_rejects_unknown_fields() -> None:
    schema = all_schemas()["OrderIntent"]
    jsonschema.validate(CONTRACT_INTENT, schema)
    jsonschema.validate({k: v for k, v in CONTRACT_INTENT.items() if k != "id"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**CONTRACT_INTENT, "colour": "red"}, schema)


def test_events_are_immutable() -> None:
    trade = sample_events()[0]
    with pytest.raises(AttributeError):
        trade.price = Decimal(1)  # type: ignore[misc]
    assert msgspec.structs.replace(trade, price=Decimal(2)).price == Decimal(2)
    assert TS > 0


@settings(max_examples=300)
@given(parent=st.text(max_size=80), role=st.text(max_size=20), index=st.integers(min_value=0, max_value=10**6))
def test_derived_id_is_exactly_rfc_uuid5(parent: str, role: str, index: int) -> None:
    expected = uuid.uuid5(uuid.UUID("5b0f3f6e-2f43-4d55-9a2b-7c3e6a1d9e10"), f"{parent}/{role}/{index}")
    assert derived_id(parent, role, index) == str(expected)
