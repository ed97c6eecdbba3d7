"""The report of a real two-root backfill in a real browser (headless Chromium): it
loads, every chart image decodes, no console error, and at a narrow window the page
itself does not scroll sideways. Skips, saying why, where Chromium is not installed
(`.ci/run` installs Debian's chromium when it can)."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Run

from dbn_backfill.sampledata.synth import generate

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: a closed sandbox: no network, no first-run, no background services
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--enable-logging=stderr", "--v=0",
]  # fmt: skip
#: appended to a copy of the page: after load, what a reader would see, as attributes
PROBE = """
<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const broken = images.filter((i) => !(i.complete && i.naturalWidth > 0));
  const b = document.body;
  b.setAttribute("data-images", images.length);
  b.setAttribute("data-broken", broken.length);
  b.setAttribute("data-sideways", document.documentElement.scrollWidth > window.innerWidth);
});
</script>
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    root = tmp_path_factory.mktemp("browser")
    generate(root / "dbn", dt.date(2024, 1, 1), dt.date(2024, 2, 1), seed=5, layout="daily")
    run = Run(root, root / "dbn", "MGC,GC", dt.date(2024, 1, 2), dt.date(2024, 1, 31))
    run.run(check=True)
    out = root / "report.html"
    proc = subprocess.run(
        [sys.executable, "-m", "dbn_backfill.cli", "report", "--db", str(run.db),
         "--checkpoint", str(run.checkpoint), "--workdir", str(run.workdir), "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def browse(page: Path, width: int, tmp_path: Path) -> tuple[dict[str, str], str]:
    """Load ``page`` (with the probe) at ``width``: the body's probe attributes and
    Chromium's log; a screenshot is left beside it for a person to look at."""
    probed = tmp_path / f"probed-{width}.html"
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    common = [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={width},2000"]
    shot = subprocess.run(
        [CHROMIUM, *common, f"--screenshot={tmp_path / f'report-{width}.png'}", probed.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shot.returncode == 0, shot.stderr[-2000:]
    dom = subprocess.run(
        [CHROMIUM, *common, "--virtual-time-budget=10000", "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", dom.stdout)
    assert body, dom.stdout[:2000]
    attributes = dict(re.findall(r'data-([\w-]+)="([^"]*)"', body.group(1)))
    return attributes, dom.stderr + shot.stderr


@pytest.mark.parametrize("width", [1280, 600])
def test_the_report_renders_in_a_browser(report, tmp_path, width):
    attributes, log = browse(report, width, tmp_path)
    assert int(attributes["images"]) >= 6, attributes  # three charts per root, two roots
    assert attributes["broken"] == "0", attributes
    assert attributes["sideways"] == "false", f"the page scrolls sideways at {width} px"
    console = [line for line in log.splitlines() if "CONSOLE" in line and "error" in line.lower()]
    assert not console, console
    assert (tmp_path / f"report-{width}.png").stat().st_size > 10_000
