"""Open a glamkit report.html in headless Chromium, save a full-page screenshot, and fail if a plot is empty.

    python scripts/check_report.py runs/demo/report.html [--screenshot runs/demo/report.png]

How: a copy of the page gets a small script that writes each plot's box (and whether its image decoded) into the
DOM; Chromium's --dump-dom reads it back, then --screenshot renders the page at the same width. A plot is empty when
its image did not load, has no size, or its box in the screenshot holds (almost) no coloured pixels: every plot
draws its data in colour and its axes in grey, so axes without data fail. Exit 0: all plots drawn; 1: a plot is
empty or the page did not render; 0 with "SKIPPED" when no Chromium is installed (apt-get install -y chromium).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome-headless-shell")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--force-device-scale-factor=1", "--default-background-color=ffffffff")
WIDTH = 1200
MIN_COLOURED = 0.003  # fraction of a plot's pixels that must be coloured (data marks)

PROBE = """<pre id="glamkit-probe"></pre><script>
(function () {
  var out = [];
  document.querySelectorAll("figure.plot").forEach(function (fig) {
    var img = fig.querySelector("img"), r = img ? img.getBoundingClientRect() : fig.getBoundingClientRect();
    out.push({name: fig.getAttribute("data-plot"), x: r.left + window.scrollX, y: r.top + window.scrollY,
              w: r.width, h: r.height, loaded: !!(img && img.complete && img.naturalWidth > 0)});
  });
  document.getElementById("glamkit-probe").textContent =
    JSON.stringify({plots: out, height: document.documentElement.scrollHeight});
})();
</script>"""


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def _chromium(browser: str, profile: Path, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    cmd = [browser, *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def probe(browser: str, page: Path, profile: Path) -> dict:
    proc = _chromium(browser, profile, f"--window-size={WIDTH},2000", "--virtual-time-budget=5000", "--dump-dom",
                     page.as_uri())
    m = re.search(r'<pre id="glamkit-probe">(.*?)</pre>', proc.stdout, re.S)
    if proc.returncode != 0 or not m or not m.group(1).strip():
        raise RuntimeError(f"chromium --dump-dom failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    import html

    return json.loads(html.unescape(m.group(1)))


def coloured_fraction(pixels, box: dict) -> float:  # type: ignore[no-untyped-def]
    """Share of pixels in the box that are saturated (not white, grey or black)."""
    import numpy as np

    x0, y0 = max(int(box["x"]), 0), max(int(box["y"]), 0)
    region = pixels[y0:y0 + int(box["h"]), x0:x0 + int(box["w"]), :3].astype(np.float32)
    if region.size == 0:
        return 0.0
    if region.max() <= 1.0:
        region = region * 255
    spread = region.max(axis=2) - region.min(axis=2)
    return float((spread > 60).mean())


def check(report: Path, screenshot: Path) -> list[str]:
    """Problems found (empty list: every plot is drawn). Raises FileNotFoundError when no browser is installed."""
    import matplotlib.image as mpimg

    browser = find_browser()
    if browser is None:
        raise FileNotFoundError("no Chromium found (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="glamkit-report-check-") as tmp:
        page = Path(tmp) / "report.html"
        text = report.read_text(encoding="utf-8")
        page.write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
        info = probe(browser, page, Path(tmp) / "profile")
        height = int(info["height"]) + 20
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        proc = _chromium(browser, Path(tmp) / "profile", f"--window-size={WIDTH},{height}",
                         "--virtual-time-budget=5000", f"--screenshot={screenshot.resolve()}", page.as_uri())
        if proc.returncode != 0 or not screenshot.exists():
            return [f"chromium --screenshot failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}"]
    pixels = mpimg.imread(screenshot)
    problems = []
    if not info["plots"]:
        problems.append("the page holds no plots")
    for box in info["plots"]:
        name = box["name"]
        if not box["loaded"]:
            problems.append(f"plot {name}: image did not load")
        elif box["w"] < 50 or box["h"] < 50:
            problems.append(f"plot {name}: rendered at {box['w']:.0f}x{box['h']:.0f} px")
        else:
            frac = coloured_fraction(pixels, box)
            if frac < MIN_COLOURED:
                problems.append(f"plot {name}: empty ({frac:.2%} coloured pixels, need {MIN_COLOURED:.1%})")
            else:
                print(f"  plot {name:<20} {box['w']:.0f}x{box['h']:.0f} px, {frac:.1%} coloured: ok")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="Example:\n  python scripts/check_report.py runs/demo/report.html",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("report", type=Path, help="report.html to check")
    p.add_argument("--screenshot", type=Path, help="where to save the PNG (default: beside the report)")
    args = p.parse_args(argv)
    report = args.report.resolve()
    if not report.is_file():
        print(f"check_report: {args.report}: no such file", file=sys.stderr)
        return 1
    screenshot = args.screenshot or report.with_name(report.stem + ".png")
    try:
        problems = check(report, screenshot)
    except FileNotFoundError as exc:
        print(f"check_report: SKIPPED: {exc}")
        return 0
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"check_report: FAILED: {exc}", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"check_report: FAILED: {problem}", file=sys.stderr)
    if not problems:
        print(f"check_report: every plot drawn; screenshot {screenshot}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
