"""Every HTTP error is JSON `{error, detail}` with the right status; this module is the one place that builds them."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import nats.errors
from aiohttp import web

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error a client should see: HTTP status, a stable error code, and a detail naming the cause."""

    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or {}


def error_response(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> web.Response:
    """The JSON body every error uses."""
    return web.json_response({"error": error, "detail": detail}, status=status, headers=headers)


def bad_request(detail: str, error: str = "invalid_request") -> ApiError:
    """400: the body or a parameter is wrong; `detail` names the field and the reason."""
    return ApiError(400, error, detail)


def unauthorized(detail: str) -> ApiError:
    """401: no valid credentials."""
    return ApiError(401, "unauthorized", detail, {"WWW-Authenticate": 'Bearer realm="shrivenquant"'})


def forbidden(detail: str) -> ApiError:
    """403: authenticated, but not allowed to do this."""
    return ApiError(403, "forbidden", detail)


def not_found(detail: str) -> ApiError:
    """404: no such resource."""
    return ApiError(404, "not_found", detail)


def too_many_requests(retry_after_s: float, detail: str) -> ApiError:
    """429 with Retry-After in whole seconds (at least 1)."""
    return ApiError(429, "rate_limited", detail, {"Retry-After": str(max(1, int(retry_after_s + 0.999)))})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render ApiError and aiohttp's own HTTP errors as JSON; an unexpected fault is a logged 500."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.error, exc.detail, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        reason = exc.reason.lower().replace(" ", "_")
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return error_response(exc.status, reason, exc.text or exc.reason, headers)
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.errors.ConnectionClosedError,
            nats.errors.ConnectionReconnectingError) as exc:
        # The bus (a KV write at login, say) did not answer: the client may retry, so not a 500.
        log.warning("the event bus did not answer", exc_info=True,
                    extra={"path": request.path, "method": request.method, "error": type(exc).__name__})
        return error_response(503, "unavailable", "the event bus did not answer in time; try again",
                              {"Retry-After": "1"})
    except Exception:  # noqa: BLE001 - logged with its traceback, answered as a 500
        log.exception("unhandled error", extra={"path": request.path, "method": request.method})
        return error_response(500, "internal_error", "the server failed to handle this request; it was logged")
