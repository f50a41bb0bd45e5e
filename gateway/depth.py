"""Order-book depth over HTTP: the gateway rebuilds each market's L2 book from the book events on the bus.

The projections keep only book tops; a depth ladder needs the levels. The gateway follows
`sq.md.book.>` (BookSnapshot and BookDelta, as connectors publish them and the aggregator reads them)
from the start of SQ_MD's retained history with a server-side filter, and folds them with the same
book and Binance sync rules the aggregator and the simulated venue use (`MarketBook`), so the
ladder shows what they trade against.

- `GET /v1/depth`: the books known, with whether each is in sync;
- `GET /v1/depth/{venue}/{symbol}?levels=10`: the best `levels` (1 to 50) of each side, best first.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal

import msgspec
from aiohttp import web
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy
from prometheus_client import Counter

from events.codec import EventDecodeError, decode_for_subject
from events.market import BookDelta, BookSnapshot
from events.subjects import STREAM_MD
from gateway.auth import authenticate
from gateway.errors import bad_request, not_found
from gateway.state import GATEWAY
from processors.venue_sim import MarketBook

log = logging.getLogger(__name__)
BOOK_SUBJECTS = "sq.md.book.>"
DEFAULT_LEVELS = 10
MAX_LEVELS = 50
READERS = ("viewer", "trader", "risk", "admin")
REFUSED = Counter("sq_gateway_depth_refused_total", "Book events the depth view could not apply", ["reason"])


class DepthLevel(msgspec.Struct, array_like=True):
    """One price level: [price, size] (decimal strings)."""

    price: Decimal
    size: Decimal


class Depth(msgspec.Struct):
    """GET /v1/depth/{venue}/{symbol}: the best levels of each side, best first."""

    venue: str
    symbol: str
    ts: int
    synced: bool
    bids: list[DepthLevel]
    asks: list[DepthLevel]


class BookInfo(msgspec.Struct):
    """One book the gateway holds."""

    venue: str
    symbol: str
    ts: int
    synced: bool


class BookList(msgspec.Struct):
    """GET /v1/depth: every book the gateway holds."""

    books: list[BookInfo]


@dataclass
class DepthBooks:
    """L2 books by (venue, symbol), folded from the book events on the bus."""

    books: dict[tuple[str, str], MarketBook] = field(default_factory=dict)
    times: dict[tuple[str, str], int] = field(default_factory=dict)

    def apply(self, event: BookSnapshot | BookDelta) -> None:
        """Fold one book event in; a level the book's scale cannot hold is refused and counted."""
        key = (event.venue, event.symbol)
        book = self.books.get(key)
        if book is None:
            book = self.books[key] = MarketBook()
        try:
            book.apply(event)
        except ValueError as exc:
            REFUSED.labels("unrepresentable").inc()
            log.warning("book event refused by the depth view", extra={"venue": event.venue, "symbol": event.symbol,
                                                                      "event_id": event.id, "reason": str(exc)})
            return
        self.times[key] = max(self.times.get(key, 0), event.ts)

    async def on_message(self, msg: Msg) -> None:
        """A book event from the bus (an undecodable one was already dead-lettered by its reader)."""
        try:
            event = decode_for_subject(msg.subject, msg.data)
        except EventDecodeError as exc:
            REFUSED.labels("undecodable").inc()
            log.warning("undecodable book event skipped", extra={"subject": msg.subject, "reason": exc.reason})
            return
        if isinstance(event, BookSnapshot | BookDelta):
            self.apply(event)

    def depth(self, venue: str, symbol: str, levels: int) -> Depth | None:
        """The best `levels` of each side of one book, or None when no event for it has arrived."""
        book = self.books.get((venue, symbol))
        if book is None:
            return None
        return Depth(venue=venue, symbol=symbol, ts=self.times.get((venue, symbol), 0), synced=book.usable,
                     bids=[DepthLevel(p, s) for p, s in book.side(bid=True, depth=levels)],
                     asks=[DepthLevel(p, s) for p, s in book.side(bid=False, depth=levels)])

    def known(self) -> list[BookInfo]:
        """Every book held, by venue then symbol."""
        return [BookInfo(venue=v, symbol=s, ts=self.times.get((v, s), 0), synced=book.usable)
                for (v, s), book in sorted(self.books.items())]


DEPTH = web.AppKey("depth_books", DepthBooks)
_json = msgspec.json.Encoder()


def _respond(payload: object) -> web.Response:
    return web.Response(body=_json.encode(payload), content_type="application/json")


async def list_books(request: web.Request) -> web.Response:
    """GET /v1/depth: the books the gateway holds."""
    await authenticate(request, *READERS)
    return _respond(BookList(books=request.app[DEPTH].known()))


async def one_book(request: web.Request) -> web.Response:
    """GET /v1/depth/{venue}/{symbol}?levels=: the ladder of one book."""
    await authenticate(request, *READERS)
    text = request.query.get("levels", str(DEFAULT_LEVELS))
    try:
        levels = int(text)
    except ValueError:
        raise bad_request(f"levels {text!r} is not an integer") from None
    if not 1 <= levels <= MAX_LEVELS:
        raise bad_request(f"levels {levels} is outside 1..{MAX_LEVELS}")
    venue, symbol = request.match_info["venue"], request.match_info["symbol"]
    depth = request.app[DEPTH].depth(venue, symbol, levels)
    if depth is None:
        raise not_found(f"no book for {venue}/{symbol} yet")
    return _respond(depth)


def register(app: web.Application) -> None:
    """Add the depth routes and follow the book events while the app runs."""
    app[DEPTH] = DepthBooks()
    app.router.add_get("/v1/depth", list_books)
    app.router.add_get("/v1/depth/{venue}/{symbol}", one_book)

    async def follow(app: web.Application) -> AsyncIterator[None]:
        bus = app[GATEWAY].bus
        subscription = None
        if bus is not None:
            # Server-side filtered: the gateway receives book events only, from the oldest retained.
            subscription = await bus.js.subscribe(
                BOOK_SUBJECTS, stream=STREAM_MD.name, ordered_consumer=True, cb=app[DEPTH].on_message,
                config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL), idle_heartbeat=2.0, flow_control=True)
        yield
        if subscription is not None:
            await subscription.unsubscribe()

    app.cleanup_ctx.append(follow)


__all__ = ["DEPTH", "BookList", "Depth", "DepthBooks", "register"]
