"""Open the report in real headless Chromium and check that every figure actually displays, as PNG and SVG.

The page marks each <img> with data-loaded="yes"/"no" on load (naturalWidth > 0) and puts the totals on
<body>; it then loads each figure's SVG (the img's data-svg, also linked under it) and marks
data-svg-loaded likewise, with those totals on <body> too. Chromium's --dump-dom gives the DOM after that
script ran. CI installs Debian's `chromium` package.
"""

import os
import re
import shutil
import subprocess

import pytest


def chromium() -> str:
    for name in (os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    pytest.fail(
        "headless Chromium not found: install Debian's package with `apt-get install -y chromium` "
        "(or set CHROMIUM=/path/to/chromium)"
    )


def dump_dom(page, profile, width: int = 1400) -> str:
    """The DOM after the page's scripts ran, laid out in a window `width` CSS pixels wide."""
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--window-size={width},1000",
        "--hide-scrollbars",
        "--virtual-time-budget=5000",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def body_counts(dom: str, kind: str = "images") -> tuple[int, int]:
    body = re.search(r"<body[^>]*>", dom).group(0)
    total = re.search(rf'data-{kind}-total="(\d+)"', body)
    loaded = re.search(rf'data-{kind}-loaded="(\d+)"', body)
    assert total and loaded, f"the page's {kind} check did not run: {body}"
    return int(total.group(1)), int(loaded.group(1))


FIGURES = ("curves", "figure1", "figure2", "figure3", "figure4", "figure5a", "figure5b", "figure5c", "table1",
           "table3", "figure7", "detection", "detection_epochs", "noise", "localize_precision",
           "localize_units_to_flip", "localize_forget_keep", "memorization_histogram")


def test_every_figure_of_the_report_loads_in_chromium_as_png_and_svg(report_index, tmp_path):
    page = report_index.read_text()
    expected = len(re.findall(r"<img ", page))
    assert expected == len(FIGURES)
    dom = dump_dom(report_index, tmp_path / "profile")
    assert body_counts(dom) == (expected, expected)
    assert body_counts(dom, "svgs") == (expected, expected)
    for stem in FIGURES:  # each figure shown as its PNG, its SVG loaded and linked
        img = re.search(rf'<img[^>]*src="figures/{stem}.png"[^>]*>', dom)
        assert img, stem
        assert 'data-loaded="yes"' in img.group(0) and 'data-svg-loaded="yes"' in img.group(0), img.group(0)
        assert f'data-svg="figures/{stem}.svg"' in img.group(0)
        assert f'<a href="figures/{stem}.svg">SVG</a>' in dom
    assert 'data-loaded="no"' not in dom and 'data-svg-loaded="no"' not in dom


def test_the_check_catches_a_missing_image(report_index, tmp_path):
    copy = tmp_path / "report"
    shutil.copytree(report_index.parent, copy)
    (copy / "figures" / "figure2.png").unlink()
    (copy / "figures" / "figure4.svg").unlink()
    dom = dump_dom(copy / "index.html", tmp_path / "profile")
    total, loaded = body_counts(dom)
    assert loaded == total - 1
    assert re.search(r'<img[^>]*src="figures/figure2.png"[^>]*data-loaded="no"', dom)
    total, loaded = body_counts(dom, "svgs")
    assert loaded == total - 1
    assert re.search(r'<img[^>]*src="figures/figure4.png"[^>]*data-svg-loaded="no"', dom)


def body_number(dom: str, name: str) -> int:
    found = re.search(rf'data-{name}="(\d+)"', re.search(r"<body[^>]*>", dom).group(0))
    assert found, f"the page's size check did not run (no data-{name} on <body>)"
    return int(found.group(1))


# What a compact page may take besides its figures, in CSS px at 1400 px: an inline table row (unwrapped cells:
# about 19 px), a paragraph or list item (a line or two, more for the long captions), a heading and a section's
# own margins. A table of wrapped cells (today's 28,000 px page) or a 70-row per-run dump inlined breaks it.
ROW_PX, BLOCK_PX, SECTION_PX = 24, 60, 120


def test_the_page_is_as_tall_as_its_content_and_fits_a_narrow_window(report_index, tmp_path):
    page = report_index.read_text()
    dom = dump_dom(report_index, tmp_path / "wide", 1400)
    rows = len(re.findall(r"<tr[ >]", page))
    blocks = len(re.findall(r"<(?:p|li|h3)[ >]", page))
    sections = len(re.findall(r"<section ", page))
    figures = body_number(dom, "figures-height")
    assert figures > 0
    bound = figures + ROW_PX * rows + BLOCK_PX * blocks + SECTION_PX * sections
    assert body_number(dom, "window-width") == 1400
    assert figures < body_number(dom, "page-height") <= bound, (rows, blocks, sections, figures)
    narrow = dump_dom(report_index, tmp_path / "narrow", 800)
    assert body_number(narrow, "window-width") == 800
    assert body_number(narrow, "page-width") <= 800  # wide tables scroll inside their own box
