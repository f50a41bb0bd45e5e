"""Partition tokens: the broker's mapping and ours agree, every order-path subject has one, and a
partitioned consumer receives only its own accounts' events from the server."""

from __future__ import annotations

import asyncio
import dataclasses
import re

import msgspec
import nats
import pytest

from events import Broker, Bus, encode, intent_id_for
from events.codec import EventDecodeError, decode_for_subject
from events.partitions import (
    ACCOUNT_KINDS,
    BUCKETS,
    bucket,
    mapping_config,
    on_wire,
    partition_filters,
    place,
    plain,
)
from events.subjects import patterns_by_stream, subject_for
from processors.risk.core import SUBSCRIPTIONS as RISK_SUBSCRIPTIONS
from store.follow import LiveFeed
from tests.conftest import REPO_ROOT, eventually
from tests.events.samples import sample_events

ACCOUNTS = [f"ACC{i}" for i in range(40)] + ["a", "zz_-9", "X" * 64]


async def test_the_broker_adds_the_bucket_we_compute_and_never_maps_a_subject_twice(broker: Broker) -> None:
    client = await nats.connect(broker.url)
    seen: list[str] = []

    async def collect(msg: nats.aio.msg.Msg) -> None:
        seen.append(msg.subject)

    await client.subscribe("sq.>", cb=collect)
    published = [f"sq.exec.report.SIM.{a}" for a in ACCOUNTS] + [f"sq.ord.intent.{a}" for a in ACCOUNTS]
    for subject in published + ["sq.ord.intent.3.ACC1", "sq.ctl.killswitch.all", "sq.md.trade.SIM.XYZ"]:
        await client.publish(subject, b"")
    await client.flush()
    await eventually(lambda: len(seen) == len(published) + 3, message="every message delivered")
    await client.close()
    assert seen == [on_wire(s) for s in published] + ["sq.ord.intent.3.ACC1", "sq.ctl.killswitch.all",
                                                       "sq.md.trade.SIM.XYZ"]
    assert {bucket(a) for a in ACCOUNTS} == set(range(BUCKETS))     # the sample reaches every bucket


def test_every_order_path_event_has_a_bucket_and_nothing_else_does() -> None:
    for event in sample_events():
        subject = subject_for(event)
        placed = place(subject)
        if subject.split(".")[1] in ACCOUNT_KINDS:
            assert placed is not None and placed.token is None, subject
            assert placed.account == event.account     # type: ignore[attr-defined]
            wire = on_wire(subject)
            assert place(wire) == dataclasses.replace(placed, token=bucket(placed.account))
            assert plain(wire) == subject and on_wire(wire) == wire
        else:
            assert placed is None and on_wire(subject) == subject, subject


def test_an_event_decodes_on_its_bucketed_subject_and_is_refused_on_another_bucket() -> None:
    report = next(e for e in sample_events() if type(e).__name__ == "ExecutionReport")
    subject = subject_for(report)
    assert decode_for_subject(on_wire(subject), encode(report)) == report
    head, _, account = subject.rpartition(".")
    wrong = f"{head}.{(bucket(account) + 1) % BUCKETS}.{account}"
    with pytest.raises(EventDecodeError, match=re.escape(f"belongs on {subject}")):
        decode_for_subject(wrong, encode(report))


def test_filters_split_every_family_between_instances_and_keep_shared_patterns_whole() -> None:
    assert partition_filters(RISK_SUBSCRIPTIONS, 0, 1) == list(RISK_SUBSCRIPTIONS)
    shares = [set(partition_filters(RISK_SUBSCRIPTIONS, k, 3)) for k in range(3)]
    bucketed = [{f for f in share if re.search(r"\.\d+\.\*$", f)} for share in shares]
    assert not (bucketed[0] & bucketed[1]) and not (bucketed[1] & bucketed[2]) and not (bucketed[0] & bucketed[2])
    for shared in ("sq.ctl.killswitch.>", "sq.md.summary.>", "sq.md.top.>", "sq.ord.intent.*"):
        assert all(shared in share for share in shares)
    with pytest.raises(ValueError, match="spans kinds"):
        partition_filters(("sq.>",), 0, 2)


def test_the_deployed_brokers_carry_the_same_mappings() -> None:
    config = (REPO_ROOT / "deploy" / "k8s" / "nats.yaml").read_text()
    block = "\n".join("    " + line if line else line for line in mapping_config().splitlines())
    assert block in config, "deploy/k8s/nats.yaml: paste events.partitions.mapping_config() into nats.conf"
    compose = (REPO_ROOT / "deploy" / "nats-mappings.conf").read_text()
    assert compose.endswith(mapping_config()), "deploy/nats-mappings.conf: write events.partitions.mapping_config()"


async def test_a_partitioned_consumer_receives_only_its_own_accounts_from_the_server(bus: Bus) -> None:
    intents = [e for e in sample_events() if type(e).__name__ == "OrderIntent"][:1]
    template = intents[0]
    events = [msgspec.structs.replace(template, id=intent_id_for(a, template.client_order_id), account=a)
              for a in ACCOUNTS]
    await bus.publish_batch(events)
    feeds = []
    for k in range(2):
        filters = patterns_by_stream(partition_filters(RISK_SUBSCRIPTIONS, k, 2), ["SQ_TRADING", "SQ_MD"])
        feed = LiveFeed(bus, ["SQ_TRADING"], {}, source=f"risk-{k}", filter_subjects={"SQ_TRADING": filters["SQ_TRADING"]})
        await feed.start()
        feeds.append(feed)
    received: list[list[str]] = [[], []]

    async def drain(k: int) -> None:
        while len(received[0]) + len(received[1]) < len(events):
            envelope = await feeds[k].get()
            received[k].append(envelope.event.account)     # type: ignore[attr-defined]

    tasks = [asyncio.create_task(drain(k)) for k in range(2)]
    await eventually(lambda: len(received[0]) + len(received[1]) == len(events), message="every intent delivered")
    for task in tasks:
        task.cancel()
    for feed in feeds:
        await feed.stop()
    for k in range(2):
        assert received[k] and all(bucket(a) % 2 == k for a in received[k])
    assert sorted(received[0] + received[1]) == sorted(ACCOUNTS)
