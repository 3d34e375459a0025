#!/usr/bin/env bash
# Write the files the website serves itself into _vendor/, which _config.yml adds to the
# site's static files:
#   _vendor/offline/  require.js and the Jupyter widget manager with its fonts, copied
#                     from node_modules (npm ci), plus a small script that tells the
#                     manager where those fonts are, and anywidget's front end (loaded
#                     on pages with widgets);
#   _vendor/site/     the site's own CSS (html_css_files in _config.yml, every page).
# MathJax comes from the sphinx-mathjax-offline package. There is no top-level _static/
# on purpose (CONTRIBUTING.md, "Site assets").
set -euo pipefail
cd "$(dirname "$0")/.."
dist=node_modules/@jupyter-widgets/html-manager/dist
if [ ! -f "$dist/embed-amd.js" ] || [ ! -f node_modules/requirejs/require.js ]; then
  echo "node_modules is missing the widget manager or require.js: run 'npm ci' first" >&2
  exit 1
fi
rm -rf _vendor && mkdir -p _vendor/offline/widgets _vendor/site
cp node_modules/requirejs/require.js _vendor/offline/require.js
# The manager's icon fonts come in five formats; every browser the site supports takes
# the .woff2 (listed before the others in the manager's @font-face rules).
cp "$dist"/*.woff2 _vendor/offline/widgets/
# embed-amd.js carries ipywidgets 7's base and controls twice: inside the manager's own
# module (which renders ipywidgets 7 state) and again as AMD modules for third-party
# widgets built against ipywidgets 7, which the book has none of. The second copy
# (0.8 MB of the 3.6 MB) is left out: each module starts at its license comment.
awk '/^\/\*! For license information please see / { skip = ($0 ~ /see (base7|controls7)\.js\./) } !skip' \
  "$dist"/embed-amd.js > _vendor/offline/widgets/embed-amd.js
for module in base controls html-manager html-manager/dist/libembed-amd; do
  grep -q "^define(\"@jupyter-widgets/$module\"" _vendor/offline/widgets/embed-amd.js \
    || { echo "vendor_assets.sh: embed-amd.js lost @jupyter-widgets/$module" >&2; exit 1; }
done
if grep -q '^define("@jupyter-widgets/\(base7\|controls7\)"' _vendor/offline/widgets/embed-amd.js; then
  echo "vendor_assets.sh: embed-amd.js changed layout; update the awk above" >&2; exit 1
fi
cat > _vendor/offline/widgets-config.js <<'JS'
// Loaded after require.js and before the widget manager, on pages with widgets.
(function () {
  // 1. The manager finds its icon fonts relative to its own module path; point that
  //    path at the copy on this site.
  var here = new URL(".", document.currentScript.src).href;
  window.__jupyter_widgets_assets_path__ = here + "widgets/";
  require.config({
    paths: {
      "@jupyter-widgets/html-manager/dist": here + "widgets",
      "@jupyter-widgets": here + "widgets",
    },
  });
  // 2. Widget labels typeset math through MathJax 2's MathJax.Hub.Queue; the site
  //    runs MathJax 3, which has no Hub. Provide the one call they use.
  function shim(mj) {
    if (mj && !mj.Hub) {
      mj.Hub = {
        Queue: function (job) {
          var el = job && job[2];
          if (el && window.MathJax && window.MathJax.typesetPromise) {
            window.MathJax.typesetPromise([el]).catch(function () {});
          }
        },
      };
    }
  }
  shim(window.MathJax);  // the configuration object, before MathJax has loaded
  var tries = 0;
  var timer = setInterval(function () {  // the real MathJax object, once it has loaded
    if (window.MathJax && window.MathJax.version) { shim(window.MathJax); clearInterval(timer); }
    if (++tries > 200) clearInterval(timer);
  }, 50);
})();
JS

# anywidget's front end, for widgets built on anywidget (genimg_lib.explorer): the AMD
# module that anywidget's PyPI package ships (the npm package's dist/index.js), taken
# from the installed package so that it matches the Python side's version. The widget
# manager asks for it by module name; anywidget-config.js maps that name to this copy
# (a requirejs `map` is applied before the manager's CDN `paths`).
py=.venv/bin/python; [ -x "$py" ] || py=python3
anywidget_js=$("$py" -c 'import anywidget, pathlib; print(pathlib.Path(anywidget.__file__).parent / "nbextension" / "index.js")')
mkdir -p _vendor/offline/anywidget
cp "$anywidget_js" _vendor/offline/anywidget/index.js
cat > _vendor/offline/anywidget-config.js <<'JS'
// Loaded after require.js, before the widget manager: anywidget's front end comes from this site.
(function () {
  var here = new URL(".", document.currentScript.src).href;
  require.config({ map: { "*": { anywidget: here + "anywidget/index.js" } } });
})();
JS

cat > _vendor/site/genimg.css <<'CSS'
/* genimg's own CSS, on every page (html_css_files in _config.yml). The browser check
   (tests/test_site.py) asserts what it promises, at 1280 and 390 px. */

/* 1. What is wider than the column scrolls inside it, and says so: code, outputs,
      display equations, wide inline equations and tables get a horizontal scrollbar
      that stays visible (phones and macOS hide overlay scrollbars until touched). */
.bd-article pre,
.bd-article div.cell_output .output,
.bd-article div.math mjx-container,
.bd-article span.math mjx-container,
.bd-article .pst-scrollable-table-container,
.bd-article .table-wrapper {
  overflow-x: auto;
}
/* pydata-sphinx-theme cuts inline math off at the column (span.math has overflow:
   hidden); let the equation shrink to the column and scroll instead. */
.bd-article span.math {
  max-width: 100%;
}
.bd-article span.math mjx-container {
  min-width: 0;
  overflow-y: hidden;
}
/* MathJax's copy of each formula for screen readers is clipped to nothing but laid out
   at its natural width, 2 px wider than the formula: every inline formula would get a
   scrollbar. Give it the usual 1 px box of screen-reader-only text. */
.bd-article mjx-container mjx-assistive-mml {
  width: 1px !important;
  height: 1px !important;
}
.bd-article pre::-webkit-scrollbar,
.bd-article div.cell_output .output::-webkit-scrollbar,
.bd-article mjx-container::-webkit-scrollbar,
.bd-article .pst-scrollable-table-container::-webkit-scrollbar {
  height: 8px;
}
.bd-article pre::-webkit-scrollbar-thumb,
.bd-article div.cell_output .output::-webkit-scrollbar-thumb,
.bd-article mjx-container::-webkit-scrollbar-thumb,
.bd-article .pst-scrollable-table-container::-webkit-scrollbar-thumb {
  background: var(--pst-color-border, #ccc);
  border-radius: 4px;
}
.bd-article pre::-webkit-scrollbar-track,
.bd-article div.cell_output .output::-webkit-scrollbar-track,
.bd-article mjx-container::-webkit-scrollbar-track,
.bd-article .pst-scrollable-table-container::-webkit-scrollbar-track {
  background: transparent;
}

/* 2. Long identifiers in running text and in the API's signatures wrap instead of
      pushing the page sideways on a phone (Sphinx keeps literals on one line). */
.bd-article code.literal,
.bd-article code.literal span.pre,
.bd-article dt.sig,
.bd-article dt.sig span.pre {
  white-space: normal;
  overflow-wrap: anywhere;
}

/* 3. 80 characters of code or output fit the column at 1280 px, as in JupyterLab
      (13 px code font; at the theme's 14 px only 77 did). */
.bd-article div.cell_input pre,
.bd-article div.cell_output pre {
  font-size: 0.8125rem;
}

/* 4. Widgets and animations never exceed the column. */
.bd-article div.cell_output .jupyter-widgets,
.bd-article div.cell_output .widget-box {
  max-width: 100%;
}
.bd-article div.cell_output .animation img {
  max-width: 100%;
  height: auto;
}
.bd-article div.cell_output .anim-controls,
.bd-article div.cell_output .anim-buttons {
  flex-wrap: wrap;
}
CSS
