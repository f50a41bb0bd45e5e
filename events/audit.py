"""Audit and dead-letter events: who did what, and input that was refused with the reason."""

from __future__ import annotations

from typing import Literal

from events._base import Event, Token


class AuditEvent(Event, frozen=True, kw_only=True):
    """A security-relevant action (login, token issue, permission denial); never carries a secret."""

    kind: Token
    actor: str
    action: str
    outcome: Literal["success", "failure", "denied"]
    detail: str = ""
    remote: str | None = None


class DeadLetter(Event, frozen=True, kw_only=True):
    """Input that could not be accepted: where it came from, why, and the bytes themselves."""

    source: Token
    subject: str
    reason: str
    payload: str
    payload_encoding: Literal["utf-8", "base64"] = "utf-8"
    stream_seq: int | None = None
    delivered: int | None = None
