"""The built website, checked in a real browser (headless Debian Chromium via Playwright).

Every page of the book is opened at two widths, 1280 px (a laptop) and 390 px (a phone),
in one browser, and checked for:

- offline and complete: no request leaves the machine, no file is missing, no JavaScript
  error, the math is typeset, every image loads, the widgets render;
- navigation: on the desktop ☰ collapses the table of contents and brings it back; on
  the phone ☰ opens it and its links become visible; one search box, not two;
- nothing clipped: no code, output, equation, table or text runs past the column unless
  it sits in a container that scrolls horizontally inside the column, and the page itself
  never scrolls sideways; at 1280 px, code cells fit without scrolling (80 characters);
- figures: no image in a cell output is shown at less than 90% of its natural width at
  1280 px (its labels would shrink with it);
- weight: each page's weight, defined in ``PAGE_WEIGHT_LIMIT``'s comment, and the site's;
- the download button of every page serves that page's source (the .ipynb of a chapter,
  without its stored outputs: _ext/genimg_site.py).

On Getting started, the widget also responds to input with no kernel. What the check
measured goes to ``_build/site_check.json`` and screenshots to ``_build/screenshots/``.

Needs the site (bash scripts/setup.sh) and /usr/bin/chromium. Without them the test is
skipped, unless GENIMG_REQUIRE_BROWSER=1 (CI), where their absence is a failure.
GENIMG_SITE=<folder> checks another build (e.g. to compare with main's).
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import re
import shutil
import struct
import threading
import time
import zlib
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest

from conftest import ROOT

import sys as _sys
_sys.path.insert(0, str(ROOT / "_ext"))
from genimg_site import strip_outputs  # noqa: E402  (what the download button serves)

SITE = Path(os.environ.get("GENIMG_SITE", ROOT / "_build" / "html"))
CHROMIUM = os.environ.get("GENIMG_CHROMIUM", "/usr/bin/chromium")
REQUIRED = os.environ.get("GENIMG_REQUIRE_BROWSER") == "1"
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-domain-reliability", "--no-pings",
    "--metrics-recording-only", "--disable-breakpad",
]
WIDTHS = (1280, 390)
DESKTOP, PHONE = WIDTHS
SCREENSHOT_PAGES = ("intro", "getting_started", "vae_02_elbo", "api")

MB = 1_000_000
# Page weight: the bytes (uncompressed, as stored on the site) of the page's HTML plus
# every file it loads on a first visit (CSS, JavaScript, fonts, MathJax, images),
# except the Jupyter widget manager (_static/offline/), which only the pages with
# widgets load, the same files for each; it has its own limit.
PAGE_WEIGHT_LIMIT = 4 * MB
WIDGET_MANAGER_LIMIT = 3.2 * MB
SITE_LIMIT = 25 * MB
FIGURE_MIN_SCALE = 0.9
NAV_TIMEOUT_MS = 20_000  # how long a click on ☰ may take to show its effect

pytestmark = pytest.mark.browser


RAW_TEX_JS = r"""() => [...document.querySelectorAll('article p, article li')].map(e => {
    const c = e.cloneNode(true);
    c.querySelectorAll('pre, code, mjx-container, script, .highlight').forEach(x => x.remove());
    return c.innerText; }).filter(t => /\$|\\\(|\\\[|\\[a-zA-Z]+/.test(t)).slice(0, 3)"""

# Everything the layout checks measure, in one pass over the page's article.
AUDIT_JS = r"""() => {
  const tol = 1;
  // open what a reader can open: solutions, folded code, dropdowns
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  document.querySelectorAll('.toggle-hidden').forEach(e => e.classList.remove('toggle-hidden'));
  const art = document.querySelector('article.bd-article') || document.querySelector('article') || document.body;
  const col = art.getBoundingClientRect();
  const ox = e => getComputedStyle(e).overflowX;
  const inColumn = r => r.left >= col.left - tol && r.right <= col.right + tol;
  const scrolls = e => ['auto', 'scroll'].includes(ox(e));
  const cells = [...art.querySelectorAll('div.cell')];
  function heading(e) {
    const s = e.closest('section, dl');
    const h = s && s.querySelector('h1, h2, h3, h4, dt');
    return h ? h.textContent.replace(/[#¶]/g, '').replace(/\s+/g, ' ').trim().slice(0, 60) : '';
  }
  // a label that finds the place in the source: the cell's first line, or the section
  function where(e) {
    const cell = e.closest('div.cell');
    if (cell) {
      const src = cell.querySelector('.cell_input pre');
      const first = src ? src.textContent.split('\n')[0].trim().slice(0, 60) : '(no input shown)';
      const part = e.closest('.cell_input') ? 'code' : 'output';
      return `cell ${cells.indexOf(cell) + 1} ${part} [${first}]`;
    }
    const kind = e.closest('div.math, mjx-container[display="true"]') ? 'display equation'
      : e.closest('span.math, mjx-container') ? 'inline equation'
      : e.closest('table') ? 'table' : e.closest('dt') ? 'signature'
      : e.closest('pre') ? 'code block' : e.tagName.toLowerCase();
    return `${kind} in [${heading(e)}]`;
  }
  // whether something strictly between d and its ancestor e scrolls horizontally
  function scrollsBetween(d, e) {
    for (let a = d.parentElement; a && a !== e; a = a.parentElement) if (scrolls(a)) return true;
    return false;
  }
  // the nearest ancestor that scrolls horizontally and sits inside the column
  function scrollerAbove(e) {
    for (let a = e.parentElement; a && a !== art.parentElement; a = a.parentElement)
      if (scrolls(a) && inColumn(a.getBoundingClientRect())) return a;
    return null;
  }
  function clipperAbove(e) {
    for (let a = e.parentElement; a && a !== art.parentElement; a = a.parentElement)
      if (['hidden', 'clip'].includes(ox(a))) return a;
    return null;
  }
  const found = new Map();
  function flag(e, reason, px) {
    const key = `${where(e)}: ${reason}`;
    found.set(key, Math.max(found.get(key) || 0, Math.round(px)));
  }
  for (const e of art.querySelectorAll('*')) {
    const r = e.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    const cs = getComputedStyle(e);
    if (cs.visibility === 'hidden' || cs.position === 'fixed') continue;
    if (['hidden', 'clip'].includes(cs.overflowX) && !e.closest('mjx-container')) {
      // MathJax's hidden MathML copy for screen readers is laid out wide and clipped on
      // purpose: measure math by its visible boxes, everything else by scrollWidth.
      const over = e.querySelector('mjx-assistive-mml')
        ? Math.max(0, ...[...e.querySelectorAll('*')]
            .filter(d => !d.closest('mjx-assistive-mml') && !scrollsBetween(d, e)
                         && getComputedStyle(d).visibility !== 'hidden')
            .map(d => d.getBoundingClientRect().right)) - (r.left + e.clientLeft + e.clientWidth)
        : e.scrollWidth - e.clientWidth;
      if (over > tol) flag(e, 'content cut off (overflow hidden)', over);
    }
    // text that runs out of its own box (a <pre> of raw text has no child elements)
    const textRight = cs.overflowX === 'visible' && [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())
      ? r.left + e.scrollWidth : r.right;
    const right = Math.max(r.right, textRight);
    if (right <= col.right + tol && r.left >= col.left - tol) continue;
    if (scrolls(e) && inColumn(r)) continue;
    if (scrollerAbove(e)) continue;
    flag(e, clipperAbove(e) ? 'cut off at the column edge' : 'wider than the column', right - col.right);
  }
  const wideCode = [];
  for (const pre of art.querySelectorAll('div.cell_input pre')) {
    if (pre.getBoundingClientRect().width === 0) continue;
    const over = pre.scrollWidth - pre.clientWidth;
    if (over > tol) {
      const longest = Math.max(...pre.textContent.split('\n').map(l => l.length));
      wideCode.push(`${where(pre)}: longest line ${longest} characters, `
                    + `${pre.scrollWidth} px in a ${pre.clientWidth} px box`);
    }
  }
  // how wide 80 characters of code are, in the book's code box (null: no code cell)
  let room80 = null;
  const probe = art.querySelector('div.cell_input pre');
  if (probe) {
    const line = document.createElement('span');
    line.textContent = 'x'.repeat(80);
    probe.appendChild(line);
    const cs = getComputedStyle(probe);
    room80 = [Math.ceil(line.getBoundingClientRect().width),
              probe.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight)];
    line.remove();
  }
  // what a reader scrolls sideways at this width (recorded in site_check.json, allowed)
  const scrolling = [...new Set([...art.querySelectorAll('*')].filter(e => scrolls(e)
      && e.scrollWidth > e.clientWidth + tol && e.getBoundingClientRect().width > 0)
    .map(e => `${where(e)}: ${e.scrollWidth} px in ${e.clientWidth} px`))];
  const figures = [...art.querySelectorAll('div.cell_output img')]
    .filter(i => i.naturalWidth > 0 && i.getBoundingClientRect().width > 0)
    .map(i => [where(i), i.naturalWidth, Math.round(i.getBoundingClientRect().width)]);
  const vw = window.innerWidth, docWidth = document.documentElement.scrollWidth;
  const pushers = docWidth > vw ? [...document.querySelectorAll('body *')].filter(e => {
      const r = e.getBoundingClientRect(); return r.width > 0 && r.right > vw + tol && !scrollerAbove(e);
    }).slice(0, 5).map(e => `${e.tagName.toLowerCase()}.${[...e.classList].join('.')} ${where(e)}`) : [];
  return {
    column: Math.round(col.width), docWidth, viewport: vw, pushers,
    clipped: [...found].map(([k, px]) => `${k} by ${px} px`),
    wideCode, figures, scrolling, room80,
  };
}"""

# The number of table-of-contents links a reader can see and click right now.
TOC_LINKS_SHOWN_JS = r"""() => new Set([...document.querySelectorAll(
    '.bd-sidebar-primary a.reference, #pst-primary-sidebar-modal a.reference')].filter(a => {
  const r = a.getBoundingClientRect();
  if (r.width < 1 || r.height < 1 || r.right <= 0 || r.left >= innerWidth || r.bottom <= 0 || r.top >= innerHeight)
    return false;
  const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  return hit !== null && (hit === a || a.contains(hit));
}).map(a => a.getAttribute('href'))).size"""

SEARCH_BOXES_SHOWN_JS = r"""() => [...document.querySelectorAll(
    'form.bd-search, button.search-button-field, button.search-button, .search-button__button')]
  .filter(e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0
                 && getComputedStyle(e).visibility !== 'hidden'; }).length"""


def open_offline(context, log: dict):
    """A page that lets requests reach 127.0.0.1 only, recording everything else in ``log``."""
    page = context.new_page()
    # generous: a loaded machine (CI shares its cores) can take long to go idle
    page.set_default_timeout(120_000)
    for key in ("outside", "failed", "page_errors", "bad_status", "loaded"):
        log.setdefault(key, [])

    def route(r):
        host = urlparse(r.request.url).hostname
        if r.request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":
            r.continue_()
        else:
            log["outside"].append(r.request.url)
            r.abort()

    page.route("**/*", route)
    inflight = log.setdefault("inflight", set())
    page.on("request", lambda req: inflight.add(req))
    page.on("requestfailed", lambda req: (inflight.discard(req), log["failed"].append(req.url)))
    page.on("requestfinished", lambda req: (inflight.discard(req), log["loaded"].append(req.url)))
    page.on("pageerror", lambda err: log["page_errors"].append(str(err)))
    page.on("response", lambda resp: log["bad_status"].append(f"{resp.status} {resp.url}") if resp.status >= 400 else None)
    return page


def settle(page, log: dict) -> None:
    """Wait for MathJax, the widgets, every image and font, and the last request.

    Playwright's "networkidle" sometimes never comes on a page whose requests have all
    finished, so the requests in flight are counted from the page's own events."""
    if page.locator("mjx-container, .math").count():
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=60_000)
        page.evaluate("() => MathJax.startup.promise")
    if page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count():
        # a rendered view: ipywidgets carry .jupyter-widgets, an anywidget (the latent
        # explorer) only the manager's .lm-Widget, both inside a .widget-subarea
        page.wait_for_selector(".widget-subarea > .lm-Widget", timeout=60_000)
    page.evaluate(
        "() => Promise.all([...document.images].filter(i => !i.complete)"
        ".map(i => new Promise(r => { i.onload = i.onerror = r; })))"
    )
    page.evaluate("() => document.fonts.ready.then(() => true)")
    quiet, deadline = 0, time.monotonic() + 120
    while quiet < 5 and time.monotonic() < deadline:  # 5 polls in a row with nothing in flight
        page.wait_for_timeout(50)
        quiet = quiet + 1 if not log["inflight"] else 0
    assert not log["inflight"], f"requests still running: {[r.url for r in log['inflight']]}"


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


def _serve(directory: Path):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture(scope="module")
def server():
    reason = _missing()
    if reason:
        if REQUIRED:
            pytest.fail(f"GENIMG_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    httpd = _serve(SITE)
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


# ---------------------------------------------------------------------------------------
# Getting started: the widget responds with no kernel
# ---------------------------------------------------------------------------------------

PLAY_ICONS_JS = r"""() => [...document.querySelectorAll('.widget-play button')].map(b =>
  [b.querySelectorAll('svg').length,
   [...b.querySelectorAll('i')].filter(i => getComputedStyle(i, '::before').content !== 'none').length])"""


@pytest.fixture(scope="module")
def page_report(server, browser):
    log: dict = {}
    context = browser.new_context(viewport={"width": DESKTOP, "height": 900})
    page = open_offline(context, log)
    page.goto(f"{server}/book/getting_started.html", wait_until="load")
    page.wait_for_selector(".widget-slider", timeout=60_000)
    settle(page, log)
    report = {
        "math": page.locator("mjx-container").count(),
        "raw_tex": page.evaluate(RAW_TEX_JS),
        "images": page.evaluate(
            "() => [...document.images].map(i => [i.getAttribute('src').slice(0, 60), i.complete && i.naturalWidth > 0])"
        ),
        "play_icons_before": page.evaluate(PLAY_ICONS_JS),
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
    page.wait_for_function(
        "() => document.querySelector('.widget-readout').innerText.trim() === '3'", timeout=NAV_TIMEOUT_MS
    )
    report["shown_after"] = shown_png_size()
    report["readout"] = page.locator(".widget-readout").first.inner_text()
    report["play_icons_after"] = page.evaluate(PLAY_ICONS_JS)
    shots = ROOT / "_build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "getting_started_widget.png"))
    page.evaluate(  # the section whose display equations show typeset math
        "() => { const h = document.getElementById('toy-distributions-with-known-densities');"
        " window.scrollTo(0, h.getBoundingClientRect().top + window.scrollY - 60); }"
    )
    page.screenshot(path=str(shots / "getting_started_math.png"))
    context.close()
    report.update(log)
    return report


def test_no_request_leaves_the_machine(page_report):
    assert page_report["outside"] == [], page_report["outside"]
    assert page_report["failed"] == [], page_report["failed"]


def test_no_javascript_errors_and_no_missing_files(page_report):
    assert page_report["page_errors"] == [], page_report["page_errors"]
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


def test_play_widget_shows_one_icon_per_button_after_the_slider_moves(page_report):
    """Each button of the Play widget draws one icon, as a font glyph; the theme's Font
    Awesome script used to add an SVG next to it once the widget redrew its icon."""
    for key in ("play_icons_before", "play_icons_after"):
        icons = page_report[key]
        assert len(icons) == 3, (key, icons)  # play, stop, repeat
        assert all(svgs == 0 and glyphs == 1 for svgs, glyphs in icons), (key, icons)


# ---------------------------------------------------------------------------------------
# Every page, at 1280 and 390 px
# ---------------------------------------------------------------------------------------

def _pages() -> list[Path]:
    return sorted((SITE / "book").rglob("*.html"))


def _check_navigation(page, width: int, shot: Path | None) -> list[str]:
    problems = []
    toggle = page.locator(".primary-toggle:visible")
    if toggle.count() != 1:
        return [f"{toggle.count()} visible ☰ buttons, expected 1"]
    searches = page.evaluate(SEARCH_BOXES_SHOWN_JS)
    if searches != 1:
        problems.append(f"{searches} search boxes shown, expected 1")
    shown = page.evaluate(TOC_LINKS_SHOWN_JS)
    if width == DESKTOP:
        if shown == 0:
            return problems + ["the table of contents is not shown"]
        toggle.click()
        try:
            page.wait_for_function(f"() => ({TOC_LINKS_SHOWN_JS})() === 0", timeout=NAV_TIMEOUT_MS)
        except Exception:
            return problems + ["☰ does not collapse the table of contents"]
        page.locator(".primary-toggle:visible").click()
        try:
            page.wait_for_function(f"() => ({TOC_LINKS_SHOWN_JS})() > 0", timeout=NAV_TIMEOUT_MS)
        except Exception:
            problems.append("☰ does not bring the table of contents back")
    else:
        if shown:
            problems.append(f"{shown} table-of-contents links shown before ☰ is pressed")
        toggle.click()
        try:
            page.wait_for_function(f"() => ({TOC_LINKS_SHOWN_JS})() >= 5", timeout=NAV_TIMEOUT_MS)
        except Exception:
            return problems + [f"☰ does not show the table of contents ({page.evaluate(TOC_LINKS_SHOWN_JS)} links visible)"]
        if shot:
            page.screenshot(path=str(shot.with_name(shot.stem + "_toc.png")))
        page.keyboard.press("Escape")
        try:
            page.wait_for_function(f"() => ({TOC_LINKS_SHOWN_JS})() === 0", timeout=NAV_TIMEOUT_MS)
        except Exception:
            problems.append("Escape does not close the table of contents")
    return problems


def _download_problems(page, html: Path) -> list[str]:
    links = page.evaluate(
        "() => [...new Set([...document.querySelectorAll('.dropdown-download-buttons a[href*=\"_sources/\"]')]"
        ".map(a => a.href))]"
    )
    source = next((p for p in (ROOT / html.relative_to(SITE)).parent.glob(html.stem + ".*")
                   if p.suffix in (".ipynb", ".md")), None)
    if source is None:
        return []
    wanted = [u for u in links if urlparse(u).path.endswith("/" + source.name)]
    if not wanted:
        return [f"no download link to {source.name} (links: {links})"]
    response = page.request.get(wanted[0])
    if response.status != 200:
        return [f"{wanted[0]} answers {response.status}"]
    if source.suffix == ".ipynb":  # served without its outputs (_ext/genimg_site.py)
        expected = strip_outputs(json.loads(source.read_text()))
        served = json.loads(response.body())
        if served != expected:
            return [f"{wanted[0]} is not {source.relative_to(ROOT)} without its outputs"]
    elif response.body() != source.read_bytes():
        return [f"{wanted[0]} is not {source.relative_to(ROOT)}"]
    return []


def _locate_cells(label: str, notebook: Path) -> str:
    """Add the notebook's cell index (nbformat's, from 0) to a 'cell N ... [first line]' label."""
    m = re.match(r"cell \d+ \w+ \[(.*)\]", label)
    if not m or not notebook.exists():
        return label
    first = m.group(1)
    cells = json.loads(notebook.read_text())["cells"]
    hits = [i for i, c in enumerate(cells)
            if c["cell_type"] == "code" and "".join(c["source"]).split("\n")[0].strip().startswith(first)]
    return f"{label} = notebook cell {'/'.join(map(str, hits))}" if hits else label


@pytest.fixture(scope="module")
def site_audit(server, browser):
    """Every page at both widths: what each check found, and what it weighs."""
    shots = ROOT / "_build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    audit: dict = {}
    for width in WIDTHS:
        shared = browser.new_context(viewport={"width": width, "height": 900})
        for html in _pages():
            name = html.relative_to(SITE).as_posix()
            log: dict = {}
            # at 1280 px each page starts with an empty cache, so that it can be weighed
            context = browser.new_context(viewport={"width": width, "height": 900}) if width == DESKTOP else shared
            page = open_offline(context, log)
            page.goto(f"{server}/{name}", wait_until="load")
            settle(page, log)
            shot = shots / f"{html.stem}_{width}.png" if html.stem in SCREENSHOT_PAGES else None
            if shot:
                page.screenshot(path=str(shot))
            record = {
                "js errors": list(log["page_errors"]),
                "raw TeX": page.evaluate(RAW_TEX_JS),
                "broken images": page.evaluate(
                    "() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 80))"
                ),
                "navigation": _check_navigation(page, width, shot),
            }
            layout = page.evaluate(AUDIT_JS)
            notebook = ROOT / "book" / f"{html.stem}.ipynb"
            record["clipped"] = [_locate_cells(x, notebook) for x in layout["clipped"]]
            record["page scrolls sideways"] = (
                [f"document {layout['docWidth']} px wide in a {layout['viewport']} px window; "
                 f"past the edge: {layout['pushers']}"] if layout["docWidth"] > layout["viewport"] else []
            )
            record["wide code"] = [_locate_cells(x, notebook) for x in layout["wideCode"]]
            record["scrolls sideways (allowed)"] = layout["scrolling"]
            record["80 characters / code box, px"] = layout["room80"]
            if layout["room80"] and layout["room80"][0] > layout["room80"][1] + 1:
                record["no room for 80 characters"] = [
                    f"80 characters of code are {layout['room80'][0]} px wide, the code box {layout['room80'][1]} px"]
            record["small figures"] = [
                _locate_cells(f"{where}: {natural} px wide, shown at {shown} px ({shown / natural:.0%})", notebook)
                for where, natural, shown in layout["figures"] if shown < FIGURE_MIN_SCALE * natural
            ]
            if width == DESKTOP:
                record["download"] = _download_problems(page, html)
                sizes = {}
                for url in set(log["loaded"]):
                    path = SITE / urlparse(url).path.lstrip("/")
                    if url.startswith(server) and path.is_file():
                        sizes[path.relative_to(SITE).as_posix()] = path.stat().st_size
                manager = sum(s for p, s in sizes.items() if p.startswith("_static/offline/"))
                record["weight"] = {
                    "page": sum(sizes.values()) - manager,
                    "widget manager": manager,
                    "html": html.stat().st_size,
                    "files": len(sizes),
                }
            record["outside"] = log["outside"] + log["failed"]
            record["missing files"] = log["bad_status"]
            audit.setdefault(name, {})[width] = record
            page.close()
            if context is not shared:
                context.close()
        shared.close()
    (ROOT / "_build").mkdir(exist_ok=True)
    (ROOT / "_build" / "site_check.json").write_text(json.dumps(audit, indent=1, ensure_ascii=False))
    return audit


def _collect(audit: dict, key: str, widths=WIDTHS) -> dict:
    return {f"{page} @{w}px": rec[key] for page, by_width in audit.items()
            for w, rec in by_width.items() if w in widths and rec.get(key)}


def _fail_if(found: dict, title: str) -> None:
    """Fail with one line per offender, grouped by page and width."""
    if found:
        count = sum(map(len, found.values()))
        pytest.fail(f"{title} ({count}):\n" + "\n".join(
            f"{where}:\n    " + "\n    ".join(map(str, items)) for where, items in found.items()), pytrace=False)


def test_every_page_is_offline_typeset_and_complete(site_audit):
    for key in ("outside", "missing files", "js errors", "raw TeX", "broken images"):
        _fail_if(_collect(site_audit, key), key)


def test_table_of_contents_opens_on_a_phone_and_collapses_on_a_desktop(site_audit):
    _fail_if(_collect(site_audit, "navigation"), "navigation does not work")


def test_no_page_scrolls_sideways(site_audit):
    _fail_if(_collect(site_audit, "page scrolls sideways"), "pages wider than the window")


def test_nothing_is_clipped(site_audit):
    """No code, output, equation, table or text runs past the column unless a container
    inside the column scrolls it horizontally; nothing is cut off by overflow: hidden."""
    _fail_if(_collect(site_audit, "clipped"), "clipped or overflowing the column")


def test_code_cells_fit_the_column_at_1280px(site_audit):
    """80 characters fit; a longer line needs the reader to scroll (STYLE.md: at most 80)."""
    _fail_if(_collect(site_audit, "wide code", widths=(DESKTOP,)), f"code cells that scroll at {DESKTOP} px")


def test_80_characters_of_code_fit_the_column_at_1280px(site_audit):
    """The site's CSS gives code the room that STYLE.md's 80-character limit needs."""
    _fail_if(_collect(site_audit, "no room for 80 characters", widths=(DESKTOP,)), "code box too narrow")
    measured = [rec[DESKTOP]["80 characters / code box, px"] for rec in site_audit.values()]
    assert sum(m is not None for m in measured) >= 10, measured  # every chapter has code cells


def test_figures_are_not_shrunk_at_1280px(site_audit):
    """A figure wider than the column is scaled down with its labels; sized for the
    column (at most 7 inches at dpi 100, STYLE.md) it is shown at its natural size."""
    _fail_if(_collect(site_audit, "small figures", widths=(DESKTOP,)),
             f"figures shown below {FIGURE_MIN_SCALE:.0%} of their width at {DESKTOP} px")


def test_download_button_serves_each_pages_source(site_audit):
    _fail_if(_collect(site_audit, "download", widths=(DESKTOP,)), "download button")
    chapters = [p for p in site_audit if (ROOT / p).with_suffix(".ipynb").exists()]
    assert len(chapters) >= 10, chapters


def test_page_weight(site_audit):
    weights = {page: rec[DESKTOP]["weight"] for page, rec in site_audit.items()}
    table = "\n".join(f"  {p:40s} {w['page'] / MB:5.2f} MB (+ widget manager {w['widget manager'] / MB:4.2f} MB),"
                      f" HTML {w['html'] / MB:4.2f} MB, {w['files']} files" for p, w in weights.items())
    heavy = {p: w for p, w in weights.items() if w["page"] > PAGE_WEIGHT_LIMIT}
    assert heavy == {}, f"pages over {PAGE_WEIGHT_LIMIT / MB} MB:\n{table}"
    manager = {p: w for p, w in weights.items() if w["widget manager"] > WIDGET_MANAGER_LIMIT}
    assert manager == {}, f"widget manager over {WIDGET_MANAGER_LIMIT / MB} MB:\n{table}"
    assert sum(w["widget manager"] > 0 for w in weights.values()) >= 1, table  # it was weighed


def test_site_weight():
    reason = _missing()
    if reason:
        pytest.skip(reason)
    files = [p for p in SITE.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    parts: dict = {}
    for p in files:
        rel = p.relative_to(SITE).parts
        part = "/".join(rel[:2]) if rel[0] == "_static" and len(rel) > 2 else rel[0] if len(rel) > 1 else "(top)"
        parts[part] = parts.get(part, 0) + p.stat().st_size
    breakdown = "\n".join(f"  {part:24s} {size / MB:6.2f} MB" for part, size in sorted(parts.items(), key=lambda kv: -kv[1]))
    assert total <= SITE_LIMIT, (
        f"the site is {total / MB:.1f} MB, over {SITE_LIMIT / MB:.0f} MB. _sources/ holds the chapters' notebooks "
        f"for the download button, book/ the pages, _images/ their figures:\n{breakdown}")
    assert not [p for p in files if p.suffix == ".map"], "source maps are shipped"


# ---------------------------------------------------------------------------------------
# The checker itself, on a synthetic page with known offenders
# ---------------------------------------------------------------------------------------

def _png(width: int, height: int) -> str:
    """A grey PNG of the given size, as a data URI."""
    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _synthetic_page(bad: bool) -> str:
    """A page shaped like the book's (an article column of 400 px): cells, an equation-like
    wide block, inline code, a table, a figure. ``bad`` adds one offender of each kind."""
    long_code = "x = " + "1 + " * 30 + "1"            # 125 characters
    short_code = "x = 1"
    wide_text = "y" * 200
    cell = ('<div class="cell"><div class="cell_input"><pre style="overflow-x:auto; font: 13px monospace">{code}'
            '</pre></div><div class="cell_output">{out}</div></div>')
    ok = [
        cell.format(code=short_code, out=f'<div class="output" style="overflow-x:auto"><pre>{wide_text}</pre></div>'),
        f'<div class="math" style="overflow-x:auto"><span style="white-space:nowrap">{wide_text}</span></div>',
        f'<div style="overflow-x:auto"><table><tr><td style="white-space:nowrap">{wide_text}</td></tr></table></div>',
        cell.format(code=short_code, out=f'<img src="{_png(300, 20)}">'),
        '<p>some text that wraps as text does, long enough to fill more than one line of the column</p>',
    ]
    bad_parts = [
        cell.format(code=long_code, out=""),                                         # wide code (scrolls)
        cell.format(code=short_code, out=f'<pre style="overflow:hidden">{wide_text}</pre>'),   # cut off
        f'<p><code style="white-space:nowrap">{wide_text}</code></p>',               # pushes the page
        cell.format(code=short_code, out=f'<img src="{_png(800, 20)}" style="max-width:100%">'),  # shrunk 50%
    ]
    body = "".join(ok + (bad_parts if bad else []))
    return (f'<html><head><style>body {{ margin: 0 }} article {{ width: 400px; margin-left: 40px }}'
            f'pre {{ margin: 0 }}</style></head><body><article class="bd-article"><section><h2>Part</h2>'
            f'{body}</section></article></body></html>')


def test_layout_checker_flags_exactly_the_offenders_of_a_synthetic_page(browser):
    context = browser.new_context(viewport={"width": 800, "height": 600})
    page = context.new_page()
    page.set_content(_synthetic_page(bad=False))
    good = page.evaluate(AUDIT_JS)
    page.set_content(_synthetic_page(bad=True))
    bad = page.evaluate(AUDIT_JS)
    context.close()

    assert good["clipped"] == [] and good["wideCode"] == [] and good["docWidth"] <= good["viewport"], good
    assert all(shown >= FIGURE_MIN_SCALE * natural for _, natural, shown in good["figures"]), good

    assert len(bad["wideCode"]) == 1 and "cell 3 code [x = 1 + 1 + " in bad["wideCode"][0], bad["wideCode"]
    assert "longest line 125 characters" in bad["wideCode"][0]
    clipped = "\n".join(bad["clipped"])
    assert "cell 4 output [x = 1]: content cut off (overflow hidden)" in clipped, clipped
    assert "code in [Part]: wider than the column" in clipped, clipped
    assert len(bad["clipped"]) == 2, bad["clipped"]
    assert bad["docWidth"] > bad["viewport"] and bad["pushers"], bad
    small = [(w, n, s) for w, n, s in bad["figures"] if s < FIGURE_MIN_SCALE * n]
    assert small == [("cell 5 output [x = 1]", 800, 400)], bad["figures"]


def test_downloaded_notebooks_keep_every_cell_and_lose_only_outputs():
    """strip_outputs, on a real chapter: same cells, sources and cell metadata; no outputs."""
    source = json.loads((ROOT / "book" / "gan_03_dcgan.ipynb").read_text())
    served = strip_outputs(source)
    assert [c["source"] for c in served["cells"]] == [c["source"] for c in source["cells"]]
    assert [c["metadata"] for c in served["cells"]] == [c["metadata"] for c in source["cells"]]
    code = [c for c in served["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    assert "widgets" not in served["metadata"]
    assert any(c.get("outputs") for c in source["cells"])  # the original is untouched
    assert len(json.dumps(served)) < len(json.dumps(source)) / 3


def test_figures_are_reencoded_losslessly_and_smaller():
    """smaller_png on a real chapter figure: the same pixels, fewer bytes; and a PNG with
    more than 256 colours and real transparency keeps both."""
    import io

    import numpy as np
    from PIL import Image

    from genimg_site import smaller_png

    nb = json.loads((ROOT / "book" / "vae_01_autoencoders.ipynb").read_text())
    figure = next(base64.b64decode(o["data"]["image/png"]) for c in nb["cells"] for o in c.get("outputs", [])
                  if "image/png" in o.get("data", {}))
    small = smaller_png(figure)
    pixels = lambda b: np.asarray(Image.open(io.BytesIO(b)).convert("RGBA"))
    assert len(small) < len(figure) and (pixels(small) == pixels(figure)).all()
    rng = np.random.default_rng(0)
    rich = rng.integers(0, 256, (40, 50, 4), dtype=np.uint8)  # random colours and alpha
    buffer = io.BytesIO()
    Image.fromarray(rich, "RGBA").save(buffer, "PNG")
    assert (pixels(smaller_png(buffer.getvalue())) == rich).all()


# ---------------------------------------------------------------------------------------
# The latent explorers on the built pages (issue #14): every page that has one
# ---------------------------------------------------------------------------------------
EXPLORER_STATE_JS = """() => [...document.querySelectorAll('.genimg-explorer')].map(e =>
  [JSON.parse(e.dataset.z || 'null'), parseFloat(e.dataset.truncation || '1')])"""
EXPLORER_CANVAS_JS = """(i) => { const c = document.querySelectorAll('.genimg-explorer canvas.gx-image')[i];
  return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data).filter((_, k) => k % 4 === 0); }"""


def _explorer_pages() -> list[Path]:
    return [p for p in _pages() if "genimg-explorer" in p.read_text() or '"decoder": "anywidget:' in p.read_text()]


def _saved_explorers(html: Path) -> tuple[list[dict], dict]:
    """The page's saved explorer states and its decoders ``{id: (program, weights bytes)}``."""
    text = html.read_text()
    m = re.search(r'<script type="application/vnd.jupyter.widget-state\+json">(.*?)</script>', text, re.S)
    state = json.loads(m.group(1))["state"]
    decoders, explorers = {}, []
    for key, model in state.items():
        s = model.get("state", {})
        if "program" in s:
            buffer = next(b for b in model.get("buffers", []) if b["path"] == ["weights"])
            decoders[key] = (s["program"], base64.b64decode(buffer["data"]))
        elif "decoder" in s and "z" in s:
            explorers.append(s)
    return explorers, decoders


def _decode_like_pytorch(program, weights, z, y, psi):
    import torch

    from genimg_lib.explorer import run_program

    labels = None if not program["num_classes"] else torch.tensor([int(y or 0)])
    image = run_program(program, weights, psi * torch.tensor([z], dtype=torch.float32), labels)
    return image.reshape(-1).numpy() * 255


def test_explorers_on_the_built_pages_draw_what_pytorch_decodes(server, browser):
    """On every built page with a latent explorer: a key press on its first slider changes
    the canvas, and the canvas is the PyTorch decode (genimg_lib.explorer.run_program, the
    reference interpreter of the exported weights, itself checked against each model's
    forward at export) of the explorer's z (times its truncation psi) within 2/255. The
    decoder is the one the saved state names, or, where a page holds several explorers, the
    saved explorer and decoder that match the element's code length and label."""
    import numpy as np

    pages = _explorer_pages()
    names = {p.stem for p in pages}
    assert {"vae_04_latent_space", "gan_03_dcgan", "edit_05_studio"} <= names, names
    problems, checked = [], 0
    for html in pages:
        explorers, decoders = _saved_explorers(html)
        log: dict = {}
        context = browser.new_context(viewport={"width": DESKTOP, "height": 900})
        page = open_offline(context, log)
        page.goto(f"{server}/{html.relative_to(SITE).as_posix()}", wait_until="load")
        page.wait_for_function(f"() => document.querySelectorAll('.genimg-explorer').length === {len(explorers)}",
                               timeout=120_000)
        settle(page, log)
        for i in range(len(explorers)):
            before = np.array(page.evaluate(EXPLORER_CANVAS_JS, i), dtype=float)
            slider = page.locator(".genimg-explorer").nth(i).locator("input[type=range]").first
            slider.focus()
            slider.press("End")
            page.wait_for_timeout(50)
            after = np.array(page.evaluate(EXPLORER_CANVAS_JS, i), dtype=float)
            z, psi = page.evaluate(EXPLORER_STATE_JS)[i]
            errors = []
            for s in explorers:
                program, weights = decoders[s["decoder"].split(":", 1)[1]]
                if program["z_dim"] == len(z):
                    want = _decode_like_pytorch(program, weights, z, s.get("y"), psi)
                    if want.shape == after.shape:
                        errors.append(float(np.abs(after - want).max()))
            label = f"{html.stem} explorer {i}"
            if (after != before).sum() == 0:
                problems.append(f"{label}: the canvas did not change when the slider moved")
            if not errors or min(errors) > 2.0:
                problems.append(f"{label}: canvas differs from the PyTorch decode by {min(errors or [np.inf]):.1f}/255")
            checked += 1
        if log["outside"] or log["page_errors"]:
            problems.append(f"{html.stem}: requests leaving {log['outside']}, errors {log['page_errors']}")
        context.close()
    assert checked >= 7 and not problems, "\n".join(problems)
