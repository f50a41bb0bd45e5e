"""The risk manager: pre-trade checks, circuit breakers, kill switch and daily loss, as a pure core."""

from processors.risk.checks import CHECK_NAMES, Ctx
from processors.risk.config import (
    EffectiveLimits,
    InvalidLimits,
    Limits,
    LimitsFile,
    effective,
    load_limits,
    parse_limits,
    validate,
)
from processors.risk.core import decide, evolve
from processors.risk.state import RiskState

__all__ = [
    "CHECK_NAMES", "Ctx", "EffectiveLimits", "InvalidLimits", "Limits", "LimitsFile", "RiskState",
    "decide", "effective", "evolve", "load_limits", "parse_limits", "validate",
]
