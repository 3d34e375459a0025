"""viz.animation_html shows its first frame before (and without) its script, and its player
starts even when the script runs before the output is in the page (issue #10)."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from PIL import Image

from genimg_lib import viz

CHROMIUM = os.environ.get("GENIMG_CHROMIUM", "/usr/bin/chromium")


def _animation(num_frames: int = 3):
    fig, ax = plt.subplots(figsize=(2, 1))
    (line,) = ax.plot([0, 1], [0, 0])
    ax.set_ylim(-1, num_frames)

    def update(i):
        line.set_ydata([i, i])
        return (line,)

    return fig, update


def _frames(html: str) -> list[bytes]:
    """The frames the player's script holds, decoded."""
    found = re.findall(r'frames\[(\d+)\] = "data:image/png;base64,([^"]*)"', html)
    return [base64.b64decode(re.sub(r"\\\n", "", data)) for _, data in sorted(found, key=lambda f: int(f[0]))]


def test_the_picture_is_the_first_frame_before_any_script_runs():
    fig, update = _animation()
    html = viz.animation_html(fig, update, num_frames=3, interval=50).data
    frames = _frames(html)
    assert len(frames) == 3 and len(set(frames)) == 3
    src = re.search(r'<img id="_anim_img\w+" src="data:image/png;base64,([^"]*)"', html)
    assert src is not None, "the <img> has no src"
    assert base64.b64decode(src.group(1)) == frames[0]
    width, height = Image.open(io.BytesIO(frames[0])).size
    assert width == 2 * height > 0  # the 2 x 1 inch figure
    assert "setTimeout(function() {" not in html  # matplotlib's zero-timeout start is replaced


def _browser_missing() -> str | None:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    return None


# Render an output the way a notebook front end may: the HTML goes into a node that is
# not yet in the document, its scripts run at once, and the node is attached later.
RENDER_DETACHED_JS = r"""async (html) => {
  const host = document.createElement('div');
  host.innerHTML = html;
  for (const s of host.querySelectorAll('script')) (0, eval)(s.textContent);
  await new Promise(r => setTimeout(r, 300));
  document.body.appendChild(host);
  await new Promise(r => setTimeout(r, 300));
  const img = host.querySelector('img');
  const before = img.getAttribute('src');
  const shown = img.complete && img.naturalWidth > 0;
  const next = host.querySelector('button[title="Next frame"]');
  try { next.click(); } catch (e) {}
  await new Promise(r => setTimeout(r, 100));
  return {shown, before, after: img.getAttribute('src')};
}"""


@pytest.mark.browser
def test_in_a_browser_the_first_frame_shows_and_the_player_starts_once_attached():
    reason = _browser_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    fig, update = _animation()
    html = viz.animation_html(fig, update, num_frames=3, interval=50).data
    fig, update = _animation()
    from matplotlib import animation

    plain = animation.FuncAnimation(fig, update, frames=3, interval=50).to_jshtml(default_mode="loop")
    plt.close(fig)
    plain = re.sub(r"<link[^>]*font-awesome[^>]*>\s*", "", plain)
    uri = lambda b: "data:image/png;base64," + base64.b64encode(b).decode()  # noqa: E731
    frames = _frames(html)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless=new", "--no-sandbox"])
        # no JavaScript at all (an untrusted notebook, a static viewer): the picture is there
        context = browser.new_context(java_script_enabled=False)
        page = context.new_page()
        page.set_content(html)
        width = Image.open(io.BytesIO(frames[0])).size[0]
        assert page.evaluate("() => document.querySelector('img').naturalWidth") == width
        context.close()
        # scripts run before the output is attached: the player still starts
        page = browser.new_page()
        page.set_content("<html><body></body></html>")
        ours = page.evaluate(RENDER_DETACHED_JS, html)
        page.set_content("<html><body></body></html>")
        theirs = page.evaluate(RENDER_DETACHED_JS, plain)
        browser.close()
    assert ours["shown"] and ours["before"] == uri(frames[0]), ours["before"][:80]
    assert re.sub(r"\s", "", ours["after"]) == uri(frames[1])
    # matplotlib's own player, for comparison, shows nothing and does not respond
    assert not theirs["shown"] and theirs["after"] is None, theirs
