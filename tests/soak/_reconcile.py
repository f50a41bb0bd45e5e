"""The soak's final audit: the WAL against what was published, and projections rebuilt from the WAL against the WAL."""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal as D
from pathlib import Path
from typing import Any

from events import DeadLetter, ExecutionReport, OrderIntent, ParentOrderCompleted, RiskDecision
from gateway.routes_query import _plain
from projections.service import Projections
from store.replay import event_ids, replay
from tests.soak._load import ACCOUNT, Market, Orders

SHOWN = 10  # offenders listed per problem
# Aggregates the live gateway and the from-scratch rebuild must answer identically.
FINGERPRINTS = {
    "orders": "select status, count(*) as n, sum(filled_quantity) as filled, sum(notional) as notional, "
              "sum(fees) as fees, sum(children) as children, count(distinct order_id) as ids from orders "
              "group by status order by status",
    "children": "select status, count(*) as n, sum(cum_quantity) as cum from children group by status order by status",
    "fills": "select count(*) as n, count(distinct report_id) as ids, sum(quantity) as quantity, "
             "sum(price * quantity) as notional, sum(fee) as fees from fills",
    "decisions": "select accepted, count(*) as n from decisions group by accepted order by accepted",
    "positions": "select account, symbol, quantity, cost, realized_pnl, fees, fills from positions "
                 "order by account, symbol",
}


class _Problems(list[str]):
    def check(self, what: str, offenders: list[Any]) -> None:
        if offenders:
            self.append(f"{what}: {len(offenders)}, e.g. {offenders[:SHOWN]}")


def reconcile(data_dir: Path, orders: Orders, market: Market, stream_last: dict[str, int],
              live: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """Every problem found, with the counts behind the checks; an empty `problems` list is a clean run.

    `live`: the live gateway's answers to FINGERPRINTS, compared with the rebuild's."""
    wal = data_dir / "wal"
    problems = _Problems()
    ids: dict[str, Counter[str]] = {}
    intents: dict[str, OrderIntent] = {}
    decisions: dict[str, list[RiskDecision]] = defaultdict(list)
    completions: dict[str, list[ParentOrderCompleted]] = defaultdict(list)
    fills: dict[str, list[ExecutionReport]] = defaultdict(list)
    for stream in ("SQ_MD", "SQ_TRADING"):
        seqs, ids[stream] = [], Counter()
        for record in replay(wal, streams=[stream]):
            seqs.append(record.seq)
            if stream == "SQ_MD":
                ids[stream][event_ids(record.payload)[0] or f"seq:{record.seq}"] += 1
                continue
            event = record.decode()
            ids[stream][event.id] += 1
            match event:
                case OrderIntent():
                    intents[event.id] = event
                case RiskDecision():
                    decisions[event.order_id].append(event)
                case ExecutionReport() if event.last_quantity > 0:
                    fills[event.order_id].append(event)
                case ParentOrderCompleted():
                    completions[event.order_id].append(event)
        problems.check(f"{stream}: WAL sequences not 1..{stream_last[stream]} without gaps",
                       [] if seqs == list(range(1, stream_last[stream] + 1)) else [len(seqs), seqs[:3], seqs[-3:]])
        problems.check(f"{stream}: event ids recorded more than once", [i for i, n in ids[stream].items() if n > 1])

    # A core that raised on an event dead-letters it and carries on: its state has missed that event.
    dead = [event for record in replay(wal, streams=["SQ_AUDIT"]) if isinstance(event := record.decode(), DeadLetter)] \
        if (wal / "SQ_AUDIT").is_dir() else []
    problems.check("dead letters (input a processor could not handle)",
                   [(d.source, d.subject, d.stream_seq, d.reason[-160:]) for d in dead])

    sent = orders.sent
    problems.check("market data published and acknowledged but not in the WAL",
                   [i for i in market.published if i not in ids["SQ_MD"]])
    problems.check("intents acknowledged but not in the WAL", [i for i in sent if i not in intents])
    problems.check("intents in the WAL that nobody sent", [i for i in intents if i not in sent])
    problems.check("intents not decided exactly once", [(i, len(decisions[i])) for i in sent if len(decisions[i]) != 1])
    problems.check("decisions against the intent's size",
                   [(i, kind) for i, (_, kind, _) in sent.items()
                    if decisions[i] and decisions[i][0].accepted == (kind == "OVERSIZE")])
    accepted = [i for i, (_, kind, _) in sent.items() if kind != "OVERSIZE"]
    filled = {i: sum((f.last_quantity for f in fills[i]), D(0)) for i in sent}
    problems.check("accepted orders without exactly one completion",
                   [(i, len(completions[i])) for i in accepted if len(completions[i]) != 1])
    problems.check("completions whose filled quantity is not the sum of the fills",
                   [i for i in accepted if completions[i] and completions[i][0].filled_quantity != filled[i]])
    problems.check("orders filled beyond their quantity", [i for i in sent if filled[i] > sent[i][2].quantity])
    problems.check("MARKET orders not filled in full",
                   [i for i, (_, kind, intent) in sent.items() if kind == "MARKET" and filled[i] != intent.quantity])
    problems.check("fills for orders nobody sent", [i for i in fills if i not in sent])

    problems.extend(_against_projections(wal, data_dir, sent, fills, filled, live))
    kinds = Counter(kind for _, kind, _ in sent.values())
    return {"problems": list(problems), "wal_records": {s: sum(c.values()) for s, c in ids.items()},
            "intents": len(sent), "by_kind": dict(kinds), "accepted": len(accepted),
            "rejected": sum(1 for d in decisions.values() if d and not d[0].accepted),
            "fills": sum(len(rows) for rows in fills.values()), "completed": sum(1 for c in completions.values() if c),
            "md_events_published": len(market.published),
            "dead_letters": len(dead)}


def _against_projections(wal: Path, data_dir: Path, sent: dict[str, Any], fills: dict[str, list[ExecutionReport]],
                         filled: dict[str, D], live: dict[str, list[dict[str, Any]]] | None) -> list[str]:
    """Rebuild the projections from the WAL alone and compare orders, fills and positions with it, and
    the live gateway's projections with the rebuild."""
    problems = _Problems()
    projections = Projections(wal, data_dir / "reconcile-projections")
    try:
        projections.load_and_catch_up()
    except Exception as exc:  # noqa: BLE001 - the audit reports it with the rest
        return [f"projections could not be rebuilt from the WAL: {exc!r} (orders {len(projections.state.orders)} "
                f"applied so far)"]
    state = projections.state
    wal_fill_ids = sorted(f.id for rows in fills.values() for f in rows)
    projected_fill_ids = sorted(f.report_id for f in state.fills if f.account == ACCOUNT)
    problems.check("fills in the WAL and in the fills projection differ",
                   [] if wal_fill_ids == projected_fill_ids else [len(wal_fill_ids), len(projected_fill_ids)])
    problems.check("orders missing from the orders projection", [i for i in sent if i not in state.orders])
    problems.check("projected filled quantity differs from the WAL's fills",
                   [i for i in sent if i in state.orders and state.orders[i].filled_quantity != filled[i]])
    expected: dict[str, D] = defaultdict(D)
    for rows in fills.values():
        for f in rows:
            expected[f.symbol] += f.last_quantity if f.side == "BUY" else -f.last_quantity
    positions = {symbol: q.quantity for (account, symbol), q in state.positions.items() if account == ACCOUNT}
    problems.check("positions differ from the sum of fills",
                   [(s, positions.get(s), q) for s, q in expected.items() if positions.get(s, D(0)) != q])
    if live is None:
        problems.append("the live gateway's projections were not read")
        return list(problems)
    tables = projections.tables()
    for name, sql in FINGERPRINTS.items():
        rebuilt = [{k: _plain(v) for k, v in row.items()} for row in projections.query(sql, tables).table.to_pylist()]
        problems.check(f"the live gateway's {name} differ from a rebuild from the WAL",
                       [] if rebuilt == live.get(name) else [{"live": live.get(name), "rebuilt": rebuilt}])
    return list(problems)
