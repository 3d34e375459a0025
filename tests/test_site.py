"""The built website, checked in a real browser (headless Debian Chromium via Playwright).

On the Getting started page: the math is typeset by the bundled MathJax, every image
has loaded, the widget has rendered and responds to input with no kernel, and no
request tried to leave the machine. A screenshot goes to _build/.

Needs the site (bash scripts/setup.sh) and /usr/bin/chromium. Without them the test
is skipped, unless GENIMG_REQUIRE_BROWSER=1 (CI), where their absence is a failure.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

from conftest import ROOT

SITE = ROOT / "_build" / "html"
CHROMIUM = os.environ.get("GENIMG_CHROMIUM", "/usr/bin/chromium")
REQUIRED = os.environ.get("GENIMG_REQUIRE_BROWSER") == "1"
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-domain-reliability", "--no-pings",
    "--metrics-recording-only", "--disable-breakpad",
]

pytestmark = pytest.mark.browser


RAW_TEX_JS = r"""() => [...document.querySelectorAll('article p, article li')].map(e => {
    const c = e.cloneNode(true);
    c.querySelectorAll('pre, code, mjx-container, script, .highlight').forEach(x => x.remove());
    return c.innerText; }).filter(t => /\$|\\\(|\\\[|\\[a-zA-Z]+/.test(t)).slice(0, 3)"""


# sphinx-thebe's configuration script is included twice by the theme; harmless.
KNOWN_PAGE_ERRORS = ("Identifier 'THEBE_JS_URL' has already been declared",)


def open_offline(browser, log: dict):
    """A page that lets requests reach 127.0.0.1 only, recording everything else in ``log``."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    for key in ("outside", "failed", "page_errors", "bad_status"):
        log.setdefault(key, [])

    def route(r):
        host = urlparse(r.request.url).hostname
        if r.request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":
            r.continue_()
        else:
            log["outside"].append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("requestfailed", lambda req: log["failed"].append(req.url))
    page.on("pageerror", lambda err: log["page_errors"].append(str(err)))
    page.on("response", lambda resp: log["bad_status"].append(f"{resp.status} {resp.url}") if resp.status >= 400 else None)
    return page


def settle(page) -> None:
    """Wait for MathJax and the widgets, and scroll through so that every image loads."""
    if page.locator("mjx-container, .math").count():
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=20000)
        page.evaluate("() => MathJax.startup.promise")
    if page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count():
        page.wait_for_selector(".jupyter-widgets", timeout=20000)
    page.evaluate("async () => { for (let y = 0; y < document.body.scrollHeight; y += 600) "
                  "{ window.scrollTo(0, y); await new Promise(r => setTimeout(r, 30)); } }")
    page.wait_for_load_state("networkidle")


def _missing() -> str | None:
    if not (SITE / "book" / "getting_started.html").exists():
        return f"no built site at {SITE}; run bash scripts/setup.sh"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM}; install Debian's chromium package"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed; pip install -r requirements.txt"
    return None


@pytest.fixture(scope="module")
def server():
    reason = _missing()
    if reason:
        if REQUIRED:
            pytest.fail(f"GENIMG_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(SITE))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def page_report(server):
    from playwright.sync_api import sync_playwright

    log: dict = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = open_offline(browser, log)
        page.goto(f"{server}/book/getting_started.html", wait_until="networkidle")
        page.wait_for_selector(".widget-slider", timeout=20000)
        settle(page)
        report = {
            "math": page.locator("mjx-container").count(),
            # text outside code and typeset math that still looks like TeX
            "raw_tex": page.evaluate(RAW_TEX_JS),
            "images": page.evaluate(
                "() => [...document.images].map(i => [i.getAttribute('src').slice(0, 60), i.complete && i.naturalWidth > 0])"
            ),
            **log,
        }
        # the widget: pressing a key on the slider must switch the frame, with no kernel.
        # The Stack shows only its selected child; we identify it by its PNG's size.
        def shown_png_size() -> int:
            return page.evaluate(
                "async () => { const box = document.querySelector('.widget-slider').closest('.widget-vbox');"
                " const img = box.children[1].querySelector('img');"
                " return (await (await fetch(img.src)).arrayBuffer()).byteLength; }"
            )

        slider = page.locator(".widget-slider").first
        slider.scroll_into_view_if_needed()
        report["shown_before"] = shown_png_size()
        handle = slider.locator(".noUi-handle").first
        handle.focus()
        for _ in range(3):
            handle.press("ArrowRight")
        page.wait_for_timeout(300)
        report["shown_after"] = shown_png_size()
        report["readout"] = page.locator(".widget-readout").first.inner_text()
        page.screenshot(path=str(ROOT / "_build" / "screenshot_getting_started_widget.png"))
        page.evaluate(  # the section whose display equations show typeset math
            "() => { const h = document.getElementById('toy-distributions-with-known-densities');"
            " window.scrollTo(0, h.getBoundingClientRect().top + window.scrollY - 60); }"
        )
        page.wait_for_timeout(200)
        page.screenshot(path=str(ROOT / "_build" / "screenshot_getting_started.png"))
        browser.close()
    return report


def test_no_request_leaves_the_machine(page_report):
    assert page_report["outside"] == [], page_report["outside"]
    assert page_report["failed"] == [], page_report["failed"]


def test_no_javascript_errors_and_no_missing_files(page_report):
    errors = [e for e in page_report["page_errors"] if e not in KNOWN_PAGE_ERRORS]
    assert errors == [], errors
    assert page_report["bad_status"] == [], page_report["bad_status"]


def test_math_is_typeset(page_report):
    assert page_report["math"] >= 10, page_report["math"]
    assert page_report["raw_tex"] == [], page_report["raw_tex"]


def test_every_image_loaded(page_report):
    images = page_report["images"]
    assert len(images) >= 8
    assert all(ok for _, ok in images), [src for src, ok in images if not ok]


def stored_frame_sizes(notebook: Path) -> list[int]:
    """Byte sizes of the frames of the first Stack in a notebook's stored widget state."""
    import base64
    import json

    state = json.loads(notebook.read_text())["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    stack = next(m for m in state.values() if m["model_name"] == "StackModel")
    sizes = []
    for child in stack["state"]["children"]:
        box = state[child.removeprefix("IPY_MODEL_")]
        for item in box["state"]["children"]:
            model = state[item.removeprefix("IPY_MODEL_")]
            if model["model_name"] == "ImageModel":
                sizes.append(len(base64.b64decode(model["buffers"][0]["data"])))
    return sizes


def test_widget_renders_and_responds_without_a_kernel(page_report):
    sizes = stored_frame_sizes(ROOT / "book" / "getting_started.ipynb")
    assert len(sizes) == 8 and len(set(sizes)) == 8  # eight distinct frames
    assert page_report["shown_before"] == sizes[0]
    assert page_report["readout"].strip() == "3"
    assert page_report["shown_after"] == sizes[3], (page_report["shown_after"], sizes)


def test_every_page_is_offline_typeset_and_complete(server):
    """Each chapter page: no request leaves the machine, math typeset, images and widgets load."""
    from playwright.sync_api import sync_playwright

    pages = sorted((SITE / "book").rglob("*.html"))
    assert pages
    problems = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for html in pages:
            log: dict = {}
            page = open_offline(browser, log)
            page.goto(f"{server}/{html.relative_to(SITE).as_posix()}", wait_until="networkidle")
            settle(page)
            found = {
                "outside": log["outside"] + log["failed"],
                "missing files": log["bad_status"],
                "js errors": [e for e in log["page_errors"] if e not in KNOWN_PAGE_ERRORS],
                "raw TeX": page.evaluate(RAW_TEX_JS),
                "broken images": page.evaluate(
                    "() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 80))"
                ),
            }
            found = {k: v for k, v in found.items() if v}
            if found:
                problems[html.name] = found
            page.close()
        browser.close()
    assert problems == {}, problems
