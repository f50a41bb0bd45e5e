"""A small Chrome DevTools Protocol client over aiohttp: launch headless Chromium, drive one page, screenshot it.

Enough of the protocol for a browser test without Playwright (whose browser download cannot work
here): one browser WebSocket, one page attached in flattened-session mode, commands matched to
answers by id, and events kept so a test can assert that the page raised no error.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--remote-debugging-port=0")
_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


def find_chromium() -> str | None:
    """$SQ_CHROMIUM, else Debian's chromium (or a chrome) on PATH; None when there is none."""
    explicit = os.environ.get("SQ_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


class CdpError(Exception):
    """A DevTools command failed, or a page script threw; `payload` is what the browser said."""

    def __init__(self, message: str, payload: object) -> None:
        super().__init__(f"{message}: {payload}")
        self.payload = payload


@dataclass
class Page:
    """One tab, driven through a flattened CDP session on the browser's WebSocket."""

    browser: Browser
    session_id: str
    events: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one command to this page and return its result."""
        return await self.browser.send(method, params, session_id=self.session_id)

    async def evaluate(self, expression: str) -> Any:
        """Run JavaScript in the page (promises awaited) and return its JSON value."""
        answer = await self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                      "returnByValue": True})
        if "exceptionDetails" in answer:
            raise CdpError(f"script failed: {expression[:80]}", answer["exceptionDetails"])
        return answer["result"].get("value")

    async def wait_for(self, expression: str, *, timeout: float = 15.0, message: str = "") -> Any:
        """Poll a JavaScript expression until it is truthy; return its value or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{message or expression} did not hold within {timeout}s")
            await asyncio.sleep(0.05)

    async def navigate(self, url: str) -> None:
        """Load `url` and wait until the document has loaded."""
        answer = await self.send("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise CdpError(f"navigation to {url} failed", answer["errorText"])
        await self.wait_for("document.readyState === 'complete'", message=f"{url} loaded")

    async def screenshot(self, path: Path) -> Path:
        """Save a PNG of the whole page to `path`."""
        answer = await self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(answer["data"]))
        return path

    def problems(self) -> list[str]:
        """Uncaught exceptions and console errors the page reported (CSP violations among them)."""
        found = []
        for event in self.events:
            if event["method"] == "Runtime.exceptionThrown":
                details = event["params"]["exceptionDetails"]
                found.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
            elif event["method"] == "Log.entryAdded" and event["params"]["entry"]["level"] == "error":
                entry = event["params"]["entry"]
                # A 4xx answer the page shows as an error is expected; a refused resource is not.
                if entry.get("source") != "network":
                    found.append(entry.get("text", ""))
        return found


@dataclass
class Browser:
    """A headless Chromium process and the WebSocket to its DevTools endpoint."""

    process: subprocess.Popen[bytes]
    session: aiohttp.ClientSession
    ws: aiohttp.ClientWebSocketResponse
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _waiting: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _pages: dict[str, Page] = field(default_factory=dict)
    _reader: asyncio.Task[None] | None = None

    @classmethod
    async def launch(cls, executable: str, profile: Path, *, timeout: float = 20.0) -> Browser:
        """Start Chromium with a throwaway profile and connect to the DevTools URL it prints on stderr."""
        profile.mkdir(parents=True, exist_ok=True)
        log_path = profile.parent / f"{profile.name}-stderr.log"
        with log_path.open("wb") as log:
            # Its own process group, so the renderer and zygote children go with it on cleanup.
            process = subprocess.Popen([executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                       stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            match = _LISTENING.search(log_path.read_text(errors="replace"))
            if match:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                _stop(process)
                raise RuntimeError(f"chromium did not print its DevTools URL within {timeout}s; "
                                   f"stderr: {log_path.read_text(errors='replace')[-2000:]}")
            await asyncio.sleep(0.05)
        session = aiohttp.ClientSession()
        ws = await session.ws_connect(match.group(1), max_msg_size=0)
        browser = cls(process, session, ws)
        browser._reader = asyncio.create_task(browser._read())
        return browser

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            frame = json.loads(message.data)
            if "id" in frame:
                future = self._waiting.pop(frame["id"], None)
                if future is not None and not future.done():
                    if "error" in frame:
                        future.set_exception(CdpError("command failed", frame["error"]))
                    else:
                        future.set_result(frame.get("result", {}))
            elif frame.get("sessionId") in self._pages:
                self._pages[frame["sessionId"]].events.append(frame)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("the DevTools connection closed"))

    async def send(self, method: str, params: dict[str, Any] | None = None, *, session_id: str | None = None,
                   timeout: float = 20.0) -> dict[str, Any]:
        """Send one command (to the browser, or to a page's session) and wait for its answer."""
        command_id = next(self._ids)
        frame: dict[str, Any] = {"id": command_id, "method": method, "params": params or {}}
        if session_id:
            frame["sessionId"] = session_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[command_id] = future
        await self.ws.send_str(json.dumps(frame))
        return await asyncio.wait_for(future, timeout)

    async def new_page(self, *, width: int = 1400, height: int = 1000) -> Page:
        """Open a blank tab, attach to it, and turn on the page, runtime and log domains."""
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        page = Page(self, attached["sessionId"])
        self._pages[page.session_id] = page
        for domain in ("Page", "Runtime", "Log"):
            await page.send(f"{domain}.enable")
        await page.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                               "deviceScaleFactor": 1, "mobile": False})
        return page

    async def close(self) -> None:
        """Ask the browser to quit, then make sure its process group is gone."""
        # A browser that already went away needs no asking.
        with contextlib.suppress(CdpError, ConnectionError, TimeoutError):
            await self.send("Browser.close", timeout=5)
        await self.ws.close()
        await self.session.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        await asyncio.to_thread(_stop, self.process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Wait briefly for a clean exit, then SIGKILL the browser's own process group."""
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
        return
    # Helpers (zygote, crashpad) may outlive the main process in its group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
