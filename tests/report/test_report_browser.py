"""The report rendered in headless Chromium: every image loads, no table widens the page.

A copy of the page gets a script that, after the load event, measures the layout and writes
the result into the DOM; ``chromium --headless --dump-dom`` prints that DOM. Debian's
``chromium`` is installed with apt-get when missing and the tests run as root (as CI does).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from apt_packages import apt_install
from report_support import WIDE_COLUMNS

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--run-all-compositor-stages-before-draw",
    "--virtual-time-budget=10000",
)
VIEWPORTS = ((1280, 900), (760, 900))
N_IMAGES = 6  # regime timeline, arm choices, OPE, equity, lambda, bars overview

# Runs after every image has loaded (the load event waits for them).
CHECK_JS = r"""
window.addEventListener("load", function () {
  var vw = window.innerWidth;
  function clipped(el) {  // inside a box that scrolls or clips horizontally
    for (var p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      var ox = getComputedStyle(p).overflowX;
      if (ox === "auto" || ox === "scroll" || ox === "hidden") return true;
    }
    return false;
  }
  var wide = [];
  document.querySelectorAll("body *").forEach(function (el) {
    var r = el.getBoundingClientRect();
    if (r.width > 0 && r.right > vw + 0.5 && !clipped(el)) {
      wide.push(el.tagName.toLowerCase() + "." + el.className + " right=" + r.right);
    }
  });
  var images = Array.prototype.map.call(document.images, function (im) {
    return {src: im.getAttribute("src"), complete: im.complete,
            naturalWidth: im.naturalWidth, right: im.getBoundingClientRect().right};
  });
  var tables = Array.prototype.map.call(document.querySelectorAll("table"), function (t) {
    var box = t.parentElement;
    return {wrapped: box.classList.contains("table-wrap"),
            overflowX: getComputedStyle(box).overflowX,
            boxRight: box.getBoundingClientRect().right,
            scrolls: box.scrollWidth > box.clientWidth, columns: t.rows[0].cells.length,
            overflows: t.getBoundingClientRect().right > box.getBoundingClientRect().right + 0.5,
            inDataChecks: !!t.closest("#data-checks")};
  });
  var gateCells = [];
  var gates = document.evaluate("//h2[text()='Gates']/following::table[1]", document, null,
                                XPathResult.FIRST_ORDERED_NODE_TYPE, null).singleNodeValue;
  if (gates) {
    var head = Array.prototype.map.call(gates.rows[0].cells,
                                        function (c) { return c.textContent; });
    var col = head.indexOf("check");
    for (var i = 1; i < gates.rows.length; i++) {
      var cell = gates.rows[i].cells[col], r = cell.getBoundingClientRect();
      gateCells.push({text: cell.textContent, visible: r.right <= vw + 0.5 && r.width > 0});
    }
  }
  // a line break inside a cell must fall at a space, after "_" or "/", or after the hyphen of
  // a hyphenated word ("family-|level"), never mid-word: each visible character's line (its
  // rect's top) is compared with the one before it
  var splits = [];
  document.querySelectorAll("td, th").forEach(function (cell) {
    var walk = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT), prevTop = null, prev = "",
        before = "";
    for (var n = walk.nextNode(); n; n = walk.nextNode()) {
      var t = n.textContent;
      for (var i = 0; i < t.length; i++) {
        if (/\s/.test(t[i])) { before = prev; prev = " "; continue; }
        var range = document.createRange();
        range.setStart(n, i); range.setEnd(n, i + 1);
        var rects = range.getClientRects();
        if (!rects.length || rects[0].width === 0) continue;
        var top = rects[0].top;
        var hyphen = prev === "-" && /[A-Za-z]/.test(before);
        if (prevTop !== null && top > prevTop + 1 && !/[\s_\/]/.test(prev) && !hyphen) {
          splits.push(cell.textContent + " | split before: " + t.slice(i, i + 12));
        }
        prevTop = top; before = prev; prev = t[i];
      }
    }
  });
  var out = document.createElement("pre");
  out.id = "edgeflow-layout-check";
  out.textContent = JSON.stringify({innerWidth: vw,
    scrollWidth: document.documentElement.scrollWidth,
    wide: wide, images: images, tables: tables, gateCells: gateCells, splits: splits});
  document.body.appendChild(out);
});
"""


def _chromium() -> str:
    """The chromium binary; installed with apt-get when missing and running as root."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    apt_install(["chromium"], ["chromium"])
    found = shutil.which("chromium")
    assert found is not None
    return found


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium, present for the whole module."""
    return _chromium()


def _run(chromium: str, profile: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def layout_check(chromium: str, page: Path, width: int, height: int, tmp: Path) -> dict[str, Any]:
    """Render a copy of ``page`` (beside it, so relative images resolve) and measure it."""
    probe = page.with_name(f".layout-check-{width}.html")
    text = page.read_text(encoding="utf-8")
    probe.write_text(text.replace("</body>", f"<script>{CHECK_JS}</script></body>"), "utf-8")
    try:
        done = _run(
            chromium,
            tmp / f"profile-{width}",
            [f"--window-size={width},{height}", "--dump-dom", probe.as_uri()],
        )
    finally:
        probe.unlink()
    found = re.search(r'<pre id="edgeflow-layout-check">(.*?)</pre>', done.stdout, re.S)
    assert found, f"no layout result from chromium (rc {done.returncode}): {done.stderr[-2000:]}"
    result: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return result


def problems(result: dict[str, Any]) -> list[str]:
    """Everything a person would see as broken: unloaded images, a page wider than the view,
    a word in a table cell split across lines."""
    width = result["innerWidth"]
    out = [f"page scrolls sideways: {result['scrollWidth']} > {width}"] * (
        result["scrollWidth"] > width
    )
    out += [f"wider than the viewport: {w}" for w in result["wide"]]
    out += [
        f"image did not load: {im['src']}"
        for im in result["images"]
        if not im["complete"] or im["naturalWidth"] <= 0
    ]
    out += [f"cell text split inside a word: {s}" for s in result["splits"]]
    out += [
        f"table outside a scrolling box ({t['columns']} columns)"
        for t in result["tables"]
        if not t["wrapped"] or t["overflowX"] not in ("auto", "scroll")
    ]
    return out


@pytest.mark.parametrize(("width", "height"), VIEWPORTS)
def test_report_images_load_and_no_table_overflows(
    chromium: str, report_page: Path, tmp_path: Path, width: int, height: int
) -> None:
    result = layout_check(chromium, report_page, width, height, tmp_path)
    assert problems(result) == []
    assert len(result["images"]) == N_IMAGES
    assert all(im["right"] <= width for im in result["images"])
    # the wide table scrolls inside its own box, which stays within the page
    wide = [t for t in result["tables"] if t["columns"] == WIDE_COLUMNS + 1]
    assert len(wide) == 1 and wide[0]["scrolls"]
    assert all(t["boxRight"] <= width for t in result["tables"])
    # every other table fits its box: nothing is cut at the right, not even behind a scroll
    cut = [t for t in result["tables"] if t["overflows"] and t["columns"] != WIDE_COLUMNS + 1]
    assert cut == []
    # the data checks are tables (facts, files, symbols), not a JSON dump
    assert sum(t["inDataChecks"] for t in result["tables"]) >= 3
    # a lower-bound gate cell shows the bound, the estimate and the interval, on screen
    cells = result["gateCells"]
    bound = [c for c in cells if c["text"].startswith("lower bound -0.1411 > 0 nats")]
    assert len(bound) == 1 and "estimate -0.07 [-0.1411, -0.007684]" in bound[0]["text"]
    assert all(c["visible"] for c in cells)


def test_the_check_sees_a_broken_image_and_an_unboxed_wide_table(
    chromium: str, tmp_path: Path
) -> None:
    cells = "".join(f"<td>column_number_{i}</td>" for i in range(60))
    page = tmp_path / "broken.html"
    page.write_text(
        "<!doctype html><html><body><img src='missing.png'>"
        f"<table><tr>{cells}</tr></table></body></html>",
        encoding="utf-8",
    )
    found = problems(layout_check(chromium, page, 1280, 900, tmp_path))
    assert any(p.startswith("page scrolls sideways") for p in found)
    assert "image did not load: missing.png" in found
    assert "table outside a scrolling box (60 columns)" in found


def test_report_screenshot_shows_the_page(chromium: str, report_page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    done = _run(
        chromium,
        tmp_path / "profile-shot",
        ["--window-size=1280,2400", f"--screenshot={shot}", report_page.as_uri()],
    )
    assert shot.exists(), done.stderr[-2000:]
    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.shape[:2] == (2400, 1280)
    # the top band (title, reasons, gate table) and a lower band (plots) both have content
    for band in (pixels[:600], pixels[1200:2400]):
        assert float(np.mean(band.min(axis=2) < 0.9)) > 0.02
    keep = os.environ.get("EDGEFLOW_REPORT_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)


def test_tables_of_long_snake_case_headers_fit_a_desktop_page(
    chromium: str, tmp_path: Path
) -> None:
    """The demo's sizer, regime comparison and recommendation tables: each header a long
    snake_case word, so the browser could not wrap it and the table ran past its box at
    1280 px (cut at the right behind a scroll bar). Headers now wrap after ``_`` and ``/``."""
    from pipelines.report import ModelSection, write_report

    tables = {
        "sizer_comparison.csv": [
            "sizer", "ann_return", "ann_log_return", "sharpe", "sortino", "max_drawdown",
            "var_bar", "cvar_bar", "cvar_day", "turnover", "mean_multiplier",
        ],
        "regime_comparison.csv": [
            "model", "kind", "folds", "log_loss_mean", "log_loss_std",
            "balanced_accuracy_mean", "balanced_accuracy_std", "accuracy_mean", "selected",
        ],
    }  # fmt: skip
    paths = []
    for name, columns in tables.items():
        path = tmp_path / name
        rows = [["name_of_it", *(f"{-0.1234 * i:.4f}" for i in range(1, len(columns)))]] * 4
        pd.DataFrame(rows, columns=columns).to_csv(path, index=False)
        paths.append(path)
    section = ModelSection("sizer", "blocked", "a sentence", tables=paths)
    page = write_report(tmp_path / "out", "long headers", {"status": "published"}, [section])
    result = layout_check(chromium, page, 1280, 900, tmp_path)
    assert problems(result) == []
    assert len(result["tables"]) == 5  # summary, gates, outcomes, the two above
    assert [t["columns"] for t in result["tables"] if t["overflows"]] == []


def test_the_recommendation_fits_as_values_and_evidence(chromium: str, tmp_path: Path) -> None:
    """A demo recommendation's fifteen columns in one table ran to 1,676 px in the 1,100 px box
    at 1280 px; as two tables, values and evidence, both fit. The one table is checked too,
    so the check is seen to catch it."""
    from pipelines.report import ModelSection, write_report
    from tasks.recommend import table_row, write_tables

    cell = {
        "basis": "family-level (no regime champion)",
        "confidence_threshold": 0.7,
        "exits": {
            "candidate": "live",
            "lift_bps_per_trade_test": [-25.265, -48.041, -5.581],
            "lift_bps_per_trade_confirmation": [34.223, 21.287, 56.26],
            "reason": "grid (4 / 2 ATR) did not beat the live settings on the test span",
        },
        "position_size_multiplier": 1.0,
        "provenance": {
            "confidence_threshold": "default: no regime champion (family-level)",
            "position_size_multiplier": "default: no sizer passed its gates",
            "risk_per_trade": "heuristic: 1% of equity x the size multiplier",
        },
        "risk_per_trade": 0.01,
        "samples": 11271,
        "stop_loss_multiplier": 2.0,
        "take_profit_multiplier": 3.0,
    }
    rows = [table_row(f, r, cell) for f in ("ema_cross", "breakout") for r in ("TREND_UP", "PANIC")]
    (tmp_path / "split").mkdir()
    split = write_tables(rows, tmp_path / "split")
    assert [p.name for p in split] == ["recommendation.csv", "recommendation_evidence.csv"]
    whole = tmp_path / "recommendation.csv"
    pd.DataFrame(rows).to_csv(whole, index=False)
    overflowing = []
    for name, tables in (("split", split), ("whole", [whole])):
        section = ModelSection("recommendation", "published", "v1", tables=tables)
        page = write_report(tmp_path / name / "out", name, {"status": "published"}, [section])
        result = layout_check(chromium, page, 1280, 900, tmp_path / name)
        assert problems(result) == []
        overflowing.append([t["columns"] for t in result["tables"] if t["overflows"]])
    assert overflowing == [[], [15]]


def test_the_check_sees_a_word_split_in_a_narrow_column(chromium: str, tmp_path: Path) -> None:
    """The report's old cell style (``overflow-wrap: anywhere``) squeezed narrow text columns
    beside wide ones until words broke mid-word (``confir m``); the check names such a cell."""
    wide = "".join(f"<td>{'x' * 40} {i}</td>" for i in range(12))
    page = tmp_path / "split.html"
    page.write_text(
        "<!doctype html><html><head><style>td{overflow-wrap:anywhere}</style></head><body>"
        f"<div style='overflow-x:auto'><table><tr><td>confirm</td>{wide}</tr></table></div>"
        "</body></html>",
        encoding="utf-8",
    )
    found = problems(layout_check(chromium, page, 760, 900, tmp_path))
    assert any(p.startswith("cell text split inside a word: confirm") for p in found), found
