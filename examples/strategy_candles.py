"""A moving-average strategy in plain nats-py: follow 1-minute candles, publish order intents.

It needs nothing from ShrivenQuant but the public contract (README, "Order intent"): bars
arrive as JSON on `sq.md.bar.<interval>.<venue>.<symbol>`, and an intent is JSON published
with JetStream on `sq.ord.intent.<account>`. When a close crosses its simple moving average
upwards it buys, downwards it sells, with a limit at the close.

    python examples/strategy_candles.py --nats-url nats://127.0.0.1:4222 --account ACC1 --symbol BTCUSDT

The intent carries no `id`: the intake derives it from account + client_order_id, and the
`Nats-Msg-Id` header (the same pair) makes JetStream drop a retried publish.
"""

import argparse
import asyncio
import json
from collections import deque

import nats
from nats.aio.msg import Msg


async def main(args: argparse.Namespace) -> None:
    nc = await nats.connect(args.nats_url)
    js = nc.jetstream()
    closes: deque[float] = deque(maxlen=args.window)
    above: bool | None = None  # was the last close above its average?
    sent = 0
    done = asyncio.Event()

    async def on_bar(msg: Msg) -> None:
        nonlocal above, sent
        bar = json.loads(msg.data)
        closes.append(float(bar["close"]))  # float is fine for a signal; the order keeps the exact string
        if len(closes) < args.window or done.is_set():
            return
        now_above = closes[-1] > sum(closes) / len(closes)
        crossed, above = above is not None and now_above != above, now_above
        if not crossed:
            return
        intent = {"account": args.account, "client_order_id": f"sma-{args.symbol}-{bar['open_time']}",
                  "symbol": args.symbol, "side": "BUY" if now_above else "SELL",
                  "quantity": args.quantity, "limit_price": bar["close"], "time_in_force": "IOC"}
        ack = await js.publish(f"sq.ord.intent.{args.account}", json.dumps(intent).encode(),
                               headers={"Nats-Msg-Id": f"{args.account}:{intent['client_order_id']}"})
        print(json.dumps({"published": intent, "stream": ack.stream, "seq": ack.seq}), flush=True)
        sent += 1
        if args.max_orders and sent >= args.max_orders:
            done.set()

    await nc.subscribe(f"sq.md.bar.{args.interval}.{args.venue}.{args.symbol}", cb=on_bar)
    await nc.flush()  # the subscription is live on the server from here
    print(json.dumps({"subscribed": f"sq.md.bar.{args.interval}.{args.venue}.{args.symbol}"}), flush=True)
    await done.wait()
    await nc.drain()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    parser.add_argument("--account", required=True)
    parser.add_argument("--symbol", required=True)
    parser.add_argument("--venue", default="BINANCE", help="market-data venue of the bars")
    parser.add_argument("--interval", default="1m")
    parser.add_argument("--window", type=int, default=5, help="bars in the moving average")
    parser.add_argument("--quantity", default="1", help="decimal string, per order")
    parser.add_argument("--max-orders", type=int, default=0, help="stop after this many orders (0: never)")
    asyncio.run(main(parser.parse_args()))
