"""The tear sheet is one offline HTML page with five drawn SVG plots, and renders in headless Chromium."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import zlib
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from processors.reporting import tearsheet

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


class _Page(HTMLParser):
    """Collects each <svg> by id with the `d` of its paths, and anything that would fetch."""

    def __init__(self) -> None:
        super().__init__()
        self.svgs: dict[str, list[str]] = {}
        self.current: str | None = None
        self.fetches: list[tuple[str, str]] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Record svgs, their paths, and any attribute that would fetch something."""
        values = dict(attrs)
        self.tags.add(tag)
        if tag == "svg":
            self.current = values.get("id") or f"svg{len(self.svgs)}"
            self.svgs[self.current] = []
        elif tag == "path" and self.current is not None:
            self.svgs[self.current].append(values.get("d") or "")
        self.fetches += [(tag, name) for name, value in attrs if name in ("src", "href") and value]

    def handle_endtag(self, tag: str) -> None:
        """Leave the current svg."""
        if tag == "svg":
            self.current = None


@pytest.fixture(scope="module")
def page_file(tmp_path_factory, goog_and_benchmark) -> Path:
    """A tear sheet of GOOG against the equal-weight benchmark, written through the CLI."""
    dates, r, b = goog_and_benchmark
    folder = tmp_path_factory.mktemp("tearsheet")
    returns = folder / "goog.csv"
    exposure = 0.6 + 0.4 * np.abs(np.sin(np.arange(len(r)) / 40))
    returns.write_text("date,return,exposure\n" + "".join(
        f"{d},{float(x)!r},{float(e)!r}\n" for d, x, e in zip(dates, r, exposure, strict=True)))
    bench = folder / "bench.csv"
    bench.write_text("date,return\n" + "".join(f"{d},{float(x)!r}\n" for d, x in zip(dates, b, strict=True)))
    out = folder / "sheet.html"
    done = subprocess.run([sys.executable, "-m", "gateway.report_cli", "report", "tearsheet", "--returns",
                           str(returns), "--benchmark", str(bench), "--title", "GOOG vs equal weight", "--out",
                           str(out)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return out


def test_tearsheet_when_written_then_has_five_svg_plots_with_drawn_paths_and_fetches_nothing(page_file):
    page = _Page()
    page.feed(page_file.read_text(encoding="utf-8"))
    assert set(tearsheet.PLOT_IDS) <= set(page.svgs)
    for plot in tearsheet.PLOT_IDS:
        drawn = [d for d in page.svgs[plot] if len(d) > 10]
        assert drawn, f"{plot} has no drawn path"
    assert len(page.svgs["monthly"]) > 40  # one cell per month, 2014-09 .. 2018-04
    assert not page.fetches and not page.tags & {"script", "link", "img", "iframe"}


def test_monthly_returns_when_compounded_then_match_the_daily_product():
    dates = ["2024-01-30", "2024-01-31", "2024-02-01", "2024-02-02"]
    years, table = tearsheet.monthly_returns(dates, np.array([0.1, -0.05, 0.02, 0.03]))
    assert years == ["2024"]
    assert table[0, 0] == pytest.approx(1.1 * 0.95 - 1) and table[0, 1] == pytest.approx(1.02 * 1.03 - 1)
    assert np.isnan(table[0, 2:]).all()


def test_returns_from_pnl_when_points_span_days_then_daily_change_over_capital():
    day = 86_400 * 10**9
    points = [(day + 5, Decimal("10")), (day + 9, Decimal("20")), (2 * day + 1, Decimal("-30"))]
    dates, returns = tearsheet.returns_from_pnl(points, 1000.0)
    assert dates == ["1970-01-02", "1970-01-03"]
    assert returns == pytest.approx([0.02, -50 / 1020])


def _png_pixels(path: Path) -> np.ndarray:
    """Decode an 8-bit RGB/RGBA non-interlaced PNG (what Chromium writes) into an (h, w, channels) array."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    at, idat, header = 8, b"", None
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        chunk = data[at + 8:at + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        at += 12 + length
    assert header is not None
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    rows = np.zeros((height, stride), dtype=np.int32)
    previous = np.zeros(stride, dtype=np.int32)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int32)
        if kind == 0:
            out = line
        elif kind == 2:
            out = (line + previous) & 0xFF
        else:
            out = np.zeros(stride, dtype=np.int32)
            for x in range(stride):
                left = out[x - channels] if x >= channels else 0
                up = previous[x]
                if kind == 1:
                    out[x] = (line[x] + left) & 0xFF
                elif kind == 3:
                    out[x] = (line[x] + (left + up) // 2) & 0xFF
                else:
                    corner = previous[x - channels] if x >= channels else 0
                    p = left + up - corner
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                    out[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows[y] = out
        previous = out
    return rows.reshape(height, width, channels)[:, :, :3]


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian package 'chromium'; "
                                              ".ci/run installs it)")
def test_tearsheet_when_rendered_in_headless_chromium_then_the_plots_drew(page_file, tmp_path):
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=960,2400", f"--screenshot={shot}",
                    page_file.as_uri()], capture_output=True, timeout=60, check=False)
    assert shot.exists(), "chromium wrote no screenshot"
    pixels = _png_pixels(shot)
    assert (pixels.sum(axis=2) < 700).mean() > 0.03, "screenshot is blank"

    def share_near(hex_colour: str) -> float:
        target = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
        return float((np.abs(pixels - target).sum(axis=2) < 60).mean())

    # Each plot's own colour is on screen: the equity line, the drawdown area, the histogram bars.
    for colour in (tearsheet.EQUITY_COLOUR, tearsheet.DRAWDOWN_COLOUR, tearsheet.HIST_COLOUR, tearsheet.EXPOSURE_COLOUR):
        assert share_near(colour) > 0.0005, colour
