"""The one fold of a pure core: decide on an event, then evolve by it.

`processors.host.ProcessorHost` runs every core through `step`, live and in catch-up; replays,
backtests, composite cores and tests call the same function, so no copy can drift from what runs in
production (`python -m tests.structure` checks that nothing else calls decide and evolve together).
It has no I/O, so a pure core may use it to fold a part of its state (the aggregator's candles).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from events._base import Event

S = TypeVar("S")                    # the core's state
E = TypeVar("E")                    # the events it reads
Out = TypeVar("Out", bound=Event)   # the events it decides


def step(decide: Callable[[S, E], list[Out]], evolve: Callable[[S, E], S], state: S, event: E, *,
         apply_outputs: bool) -> tuple[S, list[Out]]:
    """Decide on `event` from the state before it, then evolve by it (and, with `apply_outputs`, by each
    output at once, for cores whose evolve is idempotent for their own outputs).

    If decide or evolve raises, the exception goes to the caller, and `state` may be half changed (a
    core may change it in place): the caller must not go on from it (the host rebuilds it).
    """
    outputs = decide(state, event)
    state = evolve(state, event)
    if apply_outputs:
        for output in outputs:
            state = evolve(state, output)  # type: ignore[arg-type]
    return state, outputs


__all__ = ["step"]
