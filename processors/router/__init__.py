"""The execution router: parent orders to child orders (MARKET, LIMIT, TWAP, VWAP, POV), venue selection, TCA.

The pure core is `processors.router.core` (`decide` and `evolve`, folded by `processors.fold.step`);
the simulated venues are `processors.venue_sim`.
"""

from events.trading import ParentOrderCompleted
from processors.router.config import (
           InvalidConfig,
           RouterConfig,
           VenueSpec,
           load_router_config,
           parse_router_config,
)
from processors.router.core import decide, evolve
from processors.router.state import RouterState

__all__ = ["InvalidConfig", "ParentOrderCompleted", "RouterConfig", "RouterState", "VenueSpec", "decide", "evolve",
           "load_router_config", "parse_router_config"]
