"""`sq report audit ORDER_ID`: an order's full causal history read straight from the WAL, with proof of position.

Every entry names where its bytes sit — stream, WAL sequence, segment file and byte offset — and
the segment's seal: the SHA-256 chain hash written when the segment was sealed, re-computed here
over the segment's bytes (`verified`), or "unsealed" for the tail segment the recorder is still
appending to. Anyone holding the WAL can check an entry with `sq wal verify` and a hex dump.

What belongs to an order: its intent, the risk decision (every failed check with its value and
limit, and how many checks ran), every child order, child cancel and execution report, cancel
intents naming it (by order id, or by the intent's account and client order id), the
`TradeReported` of each fill, the `ParentOrderCompleted` with its TCA, and the control events
(kill switch, circuit breaker, trading state, limits) that any of those name as their cause.
Entries are in log order: broker time, then stream, then sequence — the order
`store.follow.history` replays them in.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from events.codec import EventDecodeError, decode_for_subject, to_builtins
from events.control import CircuitBreakerTripped, KillSwitchEngaged, LimitsChanged, TradingStateChanged
from events.subjects import STREAM_TRADING
from events.trading import (
    CancelIntent,
    ChildCancel,
    ChildOrder,
    ExecutionReport,
    OrderIntent,
    ParentOrderCompleted,
    ParentOrderScheduled,
    RiskDecision,
    TradeReported,
)
from store._segments import SegmentInfo, mapped
from store.follow import completed, wal_dir
from store.reader import WalReader

UNSEALED = "unsealed"
_ORDER_TYPES = (OrderIntent, RiskDecision, ParentOrderScheduled, ChildOrder, ChildCancel, ExecutionReport,
                CancelIntent, ParentOrderCompleted, TradeReported)
_CAUSE_TYPES = (KillSwitchEngaged, CircuitBreakerTripped, TradingStateChanged, LimitsChanged)
# "" too: an intent published straight onto NATS may omit its `type` tag, and the recorder keeps the record type empty.
_TYPE_NAMES = frozenset(t.__name__ for t in (*_ORDER_TYPES, *_CAUSE_TYPES)) | {""}


class OrderNotInWal(LookupError):
    """No intent or other event of `order_id` in the WAL under `wal_root`."""

    def __init__(self, order_id: str, wal_root: Path) -> None:
        super().__init__(f"order {order_id} has no event in the WAL under {wal_root}")
        self.order_id = order_id
        self.wal_root = wal_root


@dataclass(frozen=True, slots=True)
class SegmentProof:
    """A segment an entry sits in: its seal's chain hash, the previous segment's, and whether they check out."""

    segment: str
    first_seq: int
    seal: str
    previous_chain_hash: str
    verified: bool | None  # None for the unsealed tail: it has no seal to check against yet


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One event of the order's history and where its bytes are."""

    stream: str
    seq: int
    stored_ts: int
    event_ts: int
    event_type: str
    event_id: str
    causation_id: str | None
    subject: str
    segment: str
    offset: int
    seal: str
    event: dict[str, Any]


@dataclass
class AuditTrail:
    """An order's history, in log order, with the segments that hold it."""

    order_id: str
    wal_root: str
    entries: list[AuditEntry] = field(default_factory=list)
    segments: list[SegmentProof] = field(default_factory=list)
    undecodable: int = 0

    def as_json(self) -> dict[str, Any]:
        """JSON-ready builtins (money stays as decimal strings, as on the wire)."""
        first = next((e.event for e in self.entries if e.event_type == "OrderIntent"), {})
        return {"order_id": self.order_id, "account": first.get("account"), "symbol": first.get("symbol"),
                "wal_root": self.wal_root, "event_count": len(self.entries), "undecodable_records": self.undecodable,
                "segments": [vars_of(s) for s in self.segments], "events": [vars_of(e) for e in self.entries]}


def vars_of(item: Any) -> dict[str, Any]:
    """A slotted dataclass as a dict."""
    return {name: getattr(item, name) for name in item.__slots__}


def _seal_text(info: SegmentInfo) -> str:
    return info.seal.chain_hash.hex() if info.seal is not None else UNSEALED


def _prove(info: SegmentInfo) -> SegmentProof:
    """Re-hash a sealed segment's body against its seal (tamper evidence, as `wal verify` does)."""
    verified = None
    if info.seal is not None and info.seal_offset is not None:
        with mapped(info.path) as buf:
            body = buf[:info.seal_offset]
            try:
                verified = hashlib.sha256(body).digest() == info.seal.chain_hash
            finally:
                body.release()
    return SegmentProof(segment=info.path.name, first_seq=info.header.first_seq, seal=_seal_text(info),
                        previous_chain_hash=info.header.prev_hash.hex(), verified=verified)


def _belongs(event: object, order_id: str, intent: OrderIntent | None) -> bool:
    match event:
        case OrderIntent(id=event_id):
            return event_id == order_id
        case CancelIntent(order_id=target, client_order_id=coid, account=account):
            return target == order_id or (target is None and intent is not None and account == intent.account
                                          and coid == intent.client_order_id)
        case RiskDecision() | ParentOrderScheduled() | ChildOrder() | ChildCancel() | ExecutionReport() \
                | ParentOrderCompleted() | TradeReported():
            return event.order_id == order_id
    return False


def audit_order(data_dir: Path, order_id: str) -> AuditTrail:
    """The causal history of `order_id` from the trading stream's WAL under `data_dir/wal`."""
    wal_root = data_dir / "wal"
    directory = wal_dir(wal_root, STREAM_TRADING.name)
    trail = AuditTrail(order_id=order_id, wal_root=str(wal_root))
    if not directory.is_dir():
        raise OrderNotInWal(order_id, wal_root)
    reader = WalReader(directory, persist_index=False)
    layout = reader.layout()
    by_path = {info.path: info for info in layout.segments}
    intent: OrderIntent | None = None
    causes: dict[str, AuditEntry] = {}
    try:
        for record in reader.records(types=_TYPE_NAMES):
            try:
                event = completed(decode_for_subject(record.subject, record.payload), record.ts)
            except EventDecodeError:
                trail.undecodable += 1  # dead-lettered on arrival; counted so the gap is visible
                continue
            is_cause = isinstance(event, _CAUSE_TYPES)
            if not is_cause and not _belongs(event, order_id, intent):
                continue
            if isinstance(event, OrderIntent) and intent is None:
                intent = event
            info = by_path.get(record.segment)
            if info is None:  # the writer rolled since the layout was read; the new tail is unsealed
                info = next(i for i in reader.layout().segments if i.path == record.segment)
                by_path[info.path] = info
            entry = AuditEntry(stream=STREAM_TRADING.name, seq=record.seq, stored_ts=record.ts, event_ts=event.ts,
                               event_type=type(event).__name__, event_id=event.id, causation_id=event.causation_id,
                               subject=record.subject, segment=record.segment.name, offset=record.offset,
                               seal=_seal_text(info), event=to_builtins(event))
            if is_cause:
                causes[event.id] = entry
            else:
                trail.entries.append(entry)
    finally:
        reader.close()
    if not trail.entries:
        raise OrderNotInWal(order_id, wal_root)
    named = {e.causation_id for e in trail.entries}
    trail.entries.extend(entry for event_id, entry in causes.items() if event_id in named)
    trail.entries.sort(key=lambda e: (e.stored_ts, e.stream, e.seq))
    used = {e.segment for e in trail.entries}
    trail.segments = [_prove(info) for info in layout.segments if info.path.name in used]
    known = {s.segment for s in trail.segments}
    trail.segments += [_prove(info) for info in reader.layout().segments
                       if info.path.name in used and info.path.name not in known]
    return trail


def _summary(entry: AuditEntry) -> str:
    """The facts of one event a reader scans for, in a few words."""
    e = entry.event
    match entry.event_type:
        case "OrderIntent":
            algo = (e.get("algo") or {}).get("kind", "default")
            return (f"{e['account']} {e['side']} {e['quantity']} {e['symbol']} limit {e.get('limit_price')} "
                    f"algo {algo} tif {e.get('time_in_force')} client_order_id {e['client_order_id']}")
        case "RiskDecision":
            verdict = "ACCEPTED" if e["accepted"] else "REJECTED"
            failures = "; ".join(f"{f['check']}: {f['reason']} (value {f.get('value')}, limit {f.get('limit')})"
                                 for f in e.get("failures", []))
            return f"{verdict} after {e.get('checks_run', 0)} checks" + (f" - {failures}" if failures else "")
        case "ParentOrderScheduled":
            times = e.get("slice_times") or []
            plan = f"{len(times)} slices from {e['start_ts']}" if times else "no timed slices (follows the market)"
            return (f"{e['algo']} {e['side']} {e['quantity']} {e['symbol']}: {plan}, arrival {e.get('arrival_price')}"
                    + (f", stopped at start: {e['stopping']}" if e.get("stopping") else ""))
        case "ChildOrder":
            return (f"child {e['child_id']} slice {e.get('slice_index', 0)} {e['side']} {e['quantity']} "
                    f"at {e['venue']} limit {e.get('limit_price')}")
        case "ExecutionReport":
            fill = f" last {e.get('last_quantity')} @ {e.get('last_price')} fee {e.get('fee')}" \
                if e.get("last_price") is not None else ""
            reason = f" reason {e['reason']}" if e.get("reason") else ""
            return (f"child {e['child_id']} {e['status']} at {e['venue']}{fill} cum {e.get('cum_quantity')} "
                    f"leaves {e.get('leaves_quantity')}{reason}")
        case "TradeReported":
            return (f"trade report of {e['report_id']}: {e['side']} {e['quantity']} @ {e['price']} at {e['venue']}, "
                    f"executed {e['execution_time']}, reported {e['publication_time']}")
        case "ChildCancel":
            return f"cancel child {e['child_id']} at {e['venue']}: {e['reason']}"
        case "CancelIntent":
            return f"cancel requested by {e['account']}: {e.get('reason') or 'no reason given'}"
        case "ParentOrderCompleted":
            return (f"{e['status']} filled {e['filled_quantity']}/{e['quantity']} avg {e.get('average_price')} "
                    f"arrival {e.get('arrival_price')} shortfall {e.get('shortfall_bps')} bps, interval VWAP "
                    f"{e.get('interval_vwap')} slippage {e.get('vwap_slippage_bps')} bps, fees {e.get('fees')}")
    return ", ".join(f"{k}={v}" for k, v in e.items() if k not in ("type", "id", "ts", "causation_id",
                                                                     "correlation_id", "schema_version"))


def render_text(trail: AuditTrail) -> str:
    """The trail as a plain-text report: one block per event, then the segments and their seals."""
    data = trail.as_json()
    lines = [f"Audit trail of order {trail.order_id}", f"account {data['account']}  symbol {data['symbol']}",
             f"WAL {trail.wal_root}  events {len(trail.entries)}  undecodable records skipped {trail.undecodable}", ""]
    for number, entry in enumerate(trail.entries, 1):
        lines.append(f"{number:3}. {entry.event_type:22} {_summary(entry)}")
        lines.append(f"     event {entry.event_id}  cause {entry.causation_id}  event time {entry.event_ts}  "
                     f"stored {entry.stored_ts}")
        lines.append(f"     {entry.stream} seq {entry.seq}  {entry.subject}  {entry.segment} @ byte {entry.offset}  "
                     f"seal {entry.seal}")
    lines += ["", "Segments"]
    for proof in trail.segments:
        check = {True: "verified", False: "HASH MISMATCH", None: "not yet sealed"}[proof.verified]
        lines.append(f"  {proof.segment} first seq {proof.first_seq}  seal {proof.seal}  ({check})  "
                     f"previous {proof.previous_chain_hash}")
    return "\n".join(lines)


__all__ = ["UNSEALED", "AuditEntry", "AuditTrail", "OrderNotInWal", "SegmentProof", "audit_order", "render_text"]
