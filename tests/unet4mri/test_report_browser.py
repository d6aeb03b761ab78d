"""The run report in a real browser: headless Chromium opens report.html of a tiny run.

Checks what an HTML parser cannot: every picture decodes (a truncated or
mis-encoded data: URI parses fine but shows a broken image), and nothing is cut
off at the right edge (no element wider than the window, no horizontal scroll).

Needs Debian's `chromium` (`make browser` installs it; `make test` does that
first). With UNET4MRI_SCREENSHOT=PATH set it also writes a screenshot of the
whole page there; docs/report.png is made that way (docs/development.md).
"""

import html
import json
import os
import re
import shutil
import subprocess

import pytest

from unet4mri import report

# Headless, isolated and offline: no sandbox (CI runs as root), no GPU, no
# network on start-up, a fresh profile per launch (see _chromium).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
# A laptop window, and half of one (the width of docs/report.png).
WINDOW_WIDTHS = (1280, 800)
WINDOW_HEIGHT = 800
SCREENSHOT_WIDTH = 800

# Runs at the load event (after every image has decoded or failed) and writes
# what it measured into the DOM, which --dump-dom then prints.
_PROBE = """<script>
window.addEventListener("load", () => {
  const width = document.documentElement.clientWidth;
  const describe = (element) => element.tagName.toLowerCase() + (element.id ? "#" + element.id : "")
    + (element.getAttribute("alt") ? "[alt=" + element.getAttribute("alt") + "]" : "");
  const images = Array.from(document.images).map((image) => ({
    name: describe(image), complete: image.complete, naturalWidth: image.naturalWidth}));
  const cutOff = Array.from(document.body.querySelectorAll("*")).filter((element) => {
    const box = element.getBoundingClientRect();
    return box.width > 0 && (box.right > width + 0.5 || box.left < -0.5);
  }).map((element) => describe(element) + " spans " + Math.round(element.getBoundingClientRect().left)
    + ".." + Math.round(element.getBoundingClientRect().right) + " px");
  const result = {width: width, scrollWidth: document.documentElement.scrollWidth,
    scrollHeight: document.documentElement.scrollHeight, images: images, cutOff: cutOff};
  const out = document.createElement("pre");
  out.id = "browser-check";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>"""


def _chromium(tmp_path, width: int, height: int, *arguments: str) -> subprocess.CompletedProcess:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail("no chromium on PATH: run `make browser` (Debian: apt-get install chromium)")
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", *arguments]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"chromium exited with {result.returncode}: {result.stderr[-2000:]}"
    return result


def measure_in_browser(page_path: str, tmp_path, width: int) -> dict:
    """Open a copy of `page_path` with the probe in headless Chromium at `width` px; returns what the probe measured."""
    with open(page_path) as source:
        page = source.read()
    probed = tmp_path / f"probed-{width}.html"
    probed.write_text(page.replace("</body>", _PROBE + "</body>") if "</body>" in page else page + _PROBE)
    result = _chromium(tmp_path, width, WINDOW_HEIGHT, "--virtual-time-budget=10000", "--dump-dom", probed.as_uri())
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', result.stdout, re.DOTALL)
    assert found, f"the probe did not run; chromium printed: {result.stdout[-500:]} {result.stderr[-1500:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def report_page(tiny_run, tmp_path_factory) -> str:
    config, _ = tiny_run
    return report.build_report(config.output_dir, str(tmp_path_factory.mktemp("browser") / "report.html"))


@pytest.mark.e2e
@pytest.mark.parametrize("width", WINDOW_WIDTHS)
def test_report_renders_whole_in_chromium(report_page, tmp_path, width):
    measured = measure_in_browser(report_page, tmp_path, width)
    images = measured["images"]
    assert len(images) >= 3, images  # training curves, bucket chart, at least one gallery overlay
    broken = [image["name"] for image in images if not (image["complete"] and image["naturalWidth"] > 0)]
    assert not broken, f"images that did not decode: {broken}"
    assert measured["cutOff"] == [], f"cut off at {width} px: {measured['cutOff'][:10]}"
    assert measured["scrollWidth"] <= measured["width"], f"horizontal scroll: {measured['scrollWidth']} > {measured['width']} px"

    screenshot = os.environ.get("UNET4MRI_SCREENSHOT")
    if screenshot and width == SCREENSHOT_WIDTH:
        target = os.path.abspath(screenshot)
        _chromium(tmp_path, width, measured["scrollHeight"], f"--screenshot={target}", "file://" + os.path.abspath(report_page))
        assert os.path.getsize(target) > 0


def test_the_probe_sees_a_broken_picture_and_a_cut_off_table(tmp_path):
    """The checks above can fail: a page with an undecodable PNG and a table wider than the window."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><html><body><img alt='broken' src='data:image/png;base64,AAAA'>"
        "<table style='width:1500px'><tr><td>wide</td></tr></table></body></html>"
    )
    measured = measure_in_browser(str(page), tmp_path, 800)
    assert measured["images"] == [{"name": "img[alt=broken]", "complete": True, "naturalWidth": 0}]
    assert any(entry.startswith("table spans") for entry in measured["cutOff"])
    assert measured["scrollWidth"] > measured["width"]
