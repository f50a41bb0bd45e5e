"""The operator dashboard: GET / (the page) and GET /static/{name} (its script and style), no build step.

The page is plain HTML, CSS and JavaScript shipped as package data under ``gateway/static/``; it talks
only to this gateway's own API (REST and /v1/ws), so it works offline. Every answer carries a
Content-Security-Policy that allows nothing but this origin: no inline script or style, no other
host, no framing. The page itself is never cached, so a deploy is seen on the next load.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from gateway.errors import not_found

# 'self' covers ws:// and wss:// on the page's own origin in CSP Level 3 (Chromium, Firefox, Safari).
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
                           "frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def _load_assets() -> dict[str, tuple[bytes, str]]:
    """Every shipped asset by file name with its content type; only these names are ever served."""
    assets: dict[str, tuple[bytes, str]] = {}
    for entry in resources.files("gateway").joinpath("static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        if entry.is_file() and suffix in CONTENT_TYPES:
            assets[entry.name] = (entry.read_bytes(), CONTENT_TYPES[suffix])
    if "index.html" not in assets:
        raise FileNotFoundError("gateway/static/index.html is missing: the dashboard was not packaged")
    return assets


ASSETS = web.AppKey("dashboard_assets", dict[str, tuple[bytes, str]])


def _answer(body: bytes, content_type: str, cache: dict[str, str]) -> web.Response:
    return web.Response(body=body, content_type=content_type, charset="utf-8",
                        headers={**SECURITY_HEADERS, **cache})


async def index(request: web.Request) -> web.Response:
    """GET /: the dashboard page (never cached)."""
    body, content_type = request.app[ASSETS]["index.html"]
    return _answer(body, content_type, NO_STORE)


async def static(request: web.Request) -> web.Response:
    """GET /static/{name}: one shipped asset, revalidated on each load (small files; no stale script after a deploy)."""
    name = request.match_info["name"]
    asset = request.app[ASSETS].get(name)
    if asset is None or name == "index.html":
        raise not_found(f"no dashboard asset named {name!r}")
    return _answer(asset[0], asset[1], {"Cache-Control": "no-cache"})


def register(app: web.Application) -> None:
    """Add / and /static/{name}, with the assets read once at start."""
    app[ASSETS] = _load_assets()
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
