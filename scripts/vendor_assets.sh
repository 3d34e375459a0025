#!/usr/bin/env bash
# Copy the JavaScript the website serves itself from node_modules (npm ci) into
# _vendor/offline/, which _config.yml adds to the site's static files: require.js and
# the Jupyter widget manager with its fonts, plus a small script that tells the
# manager where those fonts are. MathJax comes from the sphinx-mathjax-offline package.
set -euo pipefail
cd "$(dirname "$0")/.."
dist=node_modules/@jupyter-widgets/html-manager/dist
if [ ! -f "$dist/embed-amd.js" ] || [ ! -f node_modules/requirejs/require.js ]; then
  echo "node_modules is missing the widget manager or require.js: run 'npm ci' first" >&2
  exit 1
fi
rm -rf _vendor && mkdir -p _vendor/offline/widgets
cp node_modules/requirejs/require.js _vendor/offline/require.js
cp "$dist"/embed-amd.js "$dist"/*.woff "$dist"/*.woff2 "$dist"/*.ttf "$dist"/*.eot "$dist"/*.svg _vendor/offline/widgets/
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
  // 2. The theme's Font Awesome script replaces <i class="fa ..."> by <svg>, which
  //    breaks the Play widget (it looks up its <i> to switch play/pause). "nest"
  //    keeps the <i> and draws the svg inside it.
  window.FontAwesomeConfig = Object.assign(window.FontAwesomeConfig || {}, { autoReplaceSvg: "nest" });
  // 3. Widget labels typeset math through MathJax 2's MathJax.Hub.Queue; the site
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
