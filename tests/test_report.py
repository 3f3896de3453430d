"""`lam report` renders in headless Chromium (Debian's `chromium`) with every image loaded."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from lam_platform.campaigns.scoring import score
from lam_platform.cli.main import main
from lam_platform.orchestration.demo import world_clock

# Added to a copy of the page: after load, list the images that did not decode.
PROBE = """<script>window.addEventListener("load", () => {
  const images = [...document.images];
  document.body.dataset.images = images.length;
  document.body.dataset.broken = images.filter(i => !(i.complete && i.naturalWidth > 0))
    .map(i => i.getAttribute("src")).join(" ");
});</script>"""


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "no chromium: install Debian's `chromium` package (apt-get install chromium)"
        if os.environ.get("LAM_REQUIRE_SERVICES") == "1":
            pytest.fail(message + " (LAM_REQUIRE_SERVICES=1)")
        pytest.skip(message)
    return found


def _headless(chromium: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )


def _broken_images(chromium: str, page: Path, extra: str = "") -> tuple[int, list[str]]:
    probe = page.with_name(f"probe-{page.name}")
    probe.write_text(page.read_text().replace("</body>", f"{extra}{PROBE}</body>"))
    dom = _headless(chromium, "--virtual-time-budget=15000", "--dump-dom", probe.as_uri()).stdout
    probe.unlink()
    count, broken = re.search(r'data-images="(\d+)"', dom), re.search(r'data-broken="([^"]*)"', dom)
    assert count and broken, dom[-2000:]
    return int(count.group(1)), broken.group(1).split()


@pytest.mark.e2e
def test_report_renders_with_a_screenshot_and_no_broken_images(trained_world, tmp_path):
    chromium = _chromium()
    score(trained_world, world_clock(trained_world), capacity=10)
    run = CliRunner().invoke(
        main, ["report", "--workdir", str(trained_world.root), "--examples", "2", "--json"], catch_exceptions=False
    )  # the command composes the simulator's evaluation and fairness
    assert run.exit_code == 0, run.output
    result = json.loads([line for line in run.output.splitlines() if line.startswith("{")][-1])
    page = Path(result["page"])
    expected = {
        "events_per_channel.png",
        "sequence_lengths.png",
        "training_next_action.png",
        "training_campaign_response.png",
        "gain.png",
        "qini.png",
        "calibration.png",
        "policies.png",
        "next_action.png",
        "timeline_1.png",
        "timeline_2.png",
    }
    assert expected <= set(result["images"])
    text = page.read_text()
    assert "Policy comparison" in text and "Why:" in text and "informed_ceiling" in text
    assert "Fairness of the call list" in text and (page.parent / "fairness.json").exists()
    shot = tmp_path / "report.png"
    _headless(chromium, f"--screenshot={shot}", "--window-size=1200,4000", page.as_uri())
    assert shot.exists() and shot.stat().st_size > 20_000  # a real rendering, not a blank page
    images, broken = _broken_images(chromium, page)
    assert images >= len(expected) and broken == []
    # The probe does see a broken image when there is one.
    assert _broken_images(chromium, page, '<img src="missing.png">')[1] == ["missing.png"]
