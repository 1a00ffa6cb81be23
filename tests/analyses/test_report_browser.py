"""Open the report in real headless Chromium and check that every figure actually displays.

The page marks each <img> with data-loaded="yes"/"no" on load (naturalWidth > 0) and puts the totals on
<body>; Chromium's --dump-dom gives the DOM after that script ran. CI installs Debian's `chromium` package.
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


def dump_dom(page, profile) -> str:
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
        "--virtual-time-budget=5000",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def body_counts(dom: str) -> tuple[int, int]:
    body = re.search(r"<body[^>]*>", dom).group(0)
    total = re.search(r'data-images-total="(\d+)"', body)
    loaded = re.search(r'data-images-loaded="(\d+)"', body)
    assert total and loaded, f"the page's image check did not run: {body}"
    return int(total.group(1)), int(loaded.group(1))


def test_every_image_of_the_report_loads_in_chromium(report_index, tmp_path):
    expected = len(re.findall(r"<img ", report_index.read_text()))
    assert expected >= 12
    dom = dump_dom(report_index, tmp_path / "profile")
    assert body_counts(dom) == (expected, expected)
    assert len(re.findall(r'data-loaded="yes"', dom)) == expected
    assert 'data-loaded="no"' not in dom


def test_the_check_catches_a_missing_image(report_index, tmp_path):
    copy = tmp_path / "report"
    shutil.copytree(report_index.parent, copy)
    (copy / "figures" / "figure2.png").unlink()
    dom = dump_dom(copy / "index.html", tmp_path / "profile")
    total, loaded = body_counts(dom)
    assert loaded == total - 1
    assert re.search(r'<img[^>]*src="figures/figure2.png"[^>]*data-loaded="no"', dom)
