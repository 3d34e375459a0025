"""Site-wide fixes of the genimg website: a local Sphinx extension (``_config.yml`` loads it).

1. Scripts that the build adds twice are written once. Under Jupyter Book, sphinx-thebe's
   and sphinx-togglebutton's ``env-before-read-docs`` handlers run twice, so every page
   declared ``const THEBE_JS_URL`` twice (a JavaScript error). With the Thebe launch
   button off (``launch_buttons.thebe: false``), Thebe's scripts and CSS are not written.
2. pydata-sphinx-theme's ``fontawesome.js`` (1.5 MB, loaded before the page renders, on
   every page) is not loaded: the theme's CSS already draws the same icons from its web
   fonts. It also rewrote the widgets' ``<i class="fa ...">`` icons into SVGs, which
   doubled the Play widget's icon.
3. After the build, files that no page loads are deleted from the output (the site went
   from 53 MB to about 20 MB): source maps, the MathJax components and fonts other than
   the CommonHTML TeX ones the pages use, the theme's .ttf fonts (browsers take the
   .woff2 next to them) and its translation catalogues (used at build time only).
   ``_sources/`` stays: the download button serves each chapter's .ipynb from it.
4. The notebooks that the download button serves (``_sources/**/*.ipynb``) are the
   chapters without their stored outputs and widget state: `strip_outputs`. The page
   already shows every output (its figures in ``_images/``, its widgets' state in the
   HTML), and a downloaded notebook is for running; stored, the outputs were the site's
   largest part (every figure twice). A reader who wants them stored opens the chapter
   in Colab or on GitHub.
5. The figures in ``_images/`` are re-encoded losslessly where that makes them smaller
   (`smaller_png`): an RGBA figure whose alpha is opaque everywhere becomes RGB, one
   with at most 256 colours becomes a palette image, and zlib runs with ``optimize``.
   Every pixel stays the same (checked on each file before it is replaced).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

# What the pages use of MathJax (besides the component named by ``mathjax_path``):
# TeX extensions loaded on demand (autoload), the CommonHTML fonts, and the
# accessibility explorer of MathJax's context menu with its English speech rules and
# Nemeth braille (the other 10 languages' rules are 3.2 MB).
MATHJAX_KEEP = (
    "input/tex/extensions/", "output/chtml/fonts/woff-v2/", "a11y/",
    "sre/mathmaps/base.json", "sre/mathmaps/en.json", "sre/mathmaps/nemeth.json",
)

FONTAWESOME_JS = re.compile(r'\n?[ \t]*<script src="[^"]*scripts/fontawesome\.js[^"]*"></script>')


def _thebe_on(app: Sphinx) -> bool:
    return bool((app.config.html_theme_options or {}).get("launch_buttons", {}).get("thebe"))


def shadow_webpack_macros(app: Sphinx, config) -> None:
    """Put a copy of the theme's ``static/webpack-macros.html`` without fontawesome.js
    first on the template path (the theme's layout imports its asset tags from it)."""
    import pydata_sphinx_theme

    source = Path(pydata_sphinx_theme.__file__).parent / "theme" / "pydata_sphinx_theme" / "static" / "webpack-macros.html"
    text, count = FONTAWESOME_JS.subn("", source.read_text())
    if count != 1:
        logger.warning(
            f"genimg_site: expected one fontawesome.js <script> in {source}, found {count}; "
            "the theme changed: update _ext/genimg_site.py"
        )
        return
    templates = Path(app.doctreedir).parent / "genimg_site_templates"
    (templates / "static").mkdir(parents=True, exist_ok=True)
    (templates / "static" / "webpack-macros.html").write_text(text)
    config.templates_path = [str(templates), *config.templates_path]


def write_each_asset_once(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    thebe = _thebe_on(app)
    for key in ("script_files", "css_files"):
        assets = context.get(key)
        if not assets:
            continue
        seen, kept = set(), []
        for asset in assets:
            attributes = dict(getattr(asset, "attributes", {}) or {})
            name = str(asset)
            if not thebe and ("THEBE_JS_URL" in str(attributes.get("body", "")) or "sphinx-thebe" in name):
                continue
            ident = (name, tuple(sorted((k, str(v)) for k, v in attributes.items())))
            if ident not in seen:
                seen.add(ident)
                kept.append(asset)
        assets[:] = kept


def _delete(path: Path) -> int:
    size = path.stat().st_size
    path.unlink()
    return size


def smaller_png(data: bytes) -> bytes:
    """The PNG ``data`` re-encoded losslessly as small as this can make it, or ``data``
    itself when nothing is smaller. The result decodes to the same RGBA pixels."""
    import io

    import numpy as np
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    pixels = np.asarray(image.convert("RGBA"))
    candidates = [image]
    if image.mode == "RGBA" and image.getchannel("A").getextrema() == (255, 255):
        candidates.append(image.convert("RGB"))
    if image.mode in ("RGB", "RGBA") and candidates[-1].getcolors(256) is not None:
        candidates.append(candidates[-1].quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=0))
    best = data
    for candidate in candidates:
        buffer = io.BytesIO()
        candidate.save(buffer, "PNG", optimize=True)
        encoded = buffer.getvalue()
        if len(encoded) < len(best):
            again = np.asarray(Image.open(io.BytesIO(encoded)).convert("RGBA"))
            if again.shape == pixels.shape and (again == pixels).all():
                best = encoded
    return best


def strip_outputs(notebook: dict) -> dict:
    """The notebook with every code cell's outputs and execution count cleared, and no
    saved widget state: what the download button serves (cells, sources and cell
    metadata unchanged)."""
    notebook = json.loads(json.dumps(notebook))
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
    notebook.get("metadata", {}).pop("widgets", None)
    return notebook


def prune_unused_files(app: Sphinx, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    static = Path(app.outdir) / "_static"
    removed = 0
    for path in static.rglob("*.map"):
        removed += _delete(path)
    for name in ("fontawesome.js", "fontawesome.js.LICENSE.txt"):
        if (static / "scripts" / name).exists():
            removed += _delete(static / "scripts" / name)
    for path in (static / "vendor").rglob("*.ttf"):
        removed += _delete(path)
    if (static / "locales").is_dir():
        removed += sum(p.stat().st_size for p in (static / "locales").rglob("*") if p.is_file())
        shutil.rmtree(static / "locales")
    mathjax = static / "mathjax"
    component = str(app.config.mathjax_path).removeprefix("mathjax/")
    if mathjax.is_dir():
        if not (mathjax / component).is_file():
            logger.warning(f"genimg_site: mathjax_path {app.config.mathjax_path!r} is not in {mathjax}")
            return
        for path in sorted(mathjax.rglob("*"), reverse=True):
            rel = path.relative_to(mathjax).as_posix()
            if path.is_file() and rel != component and not rel.startswith(MATHJAX_KEEP):
                removed += _delete(path)
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
    saved = 0
    for path in (Path(app.outdir) / "_sources").rglob("*.ipynb"):
        before = path.stat().st_size
        path.write_text(json.dumps(strip_outputs(json.loads(path.read_text())), indent=1,
                                    ensure_ascii=False) + "\n")
        saved += before - path.stat().st_size
    png_saved = 0
    for path in (Path(app.outdir) / "_images").glob("*.png"):
        data = path.read_bytes()
        smaller = smaller_png(data)
        if len(smaller) < len(data):
            path.write_bytes(smaller)
            png_saved += len(data) - len(smaller)
    logger.info(f"genimg_site: deleted {removed / 1e6:.1f} MB of files that no page loads; "
                f"the downloadable notebooks without outputs saved {saved / 1e6:.1f} MB, "
                f"the figures re-encoded losslessly {png_saved / 1e6:.1f} MB")


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", shadow_webpack_macros)
    app.connect("html-page-context", write_each_asset_once)
    # after sphinx-mathjax-offline has copied MathJax (build-finished, default priority 500)
    app.connect("build-finished", prune_unused_files, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
