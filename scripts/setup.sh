#!/usr/bin/env bash
# Set up everything and build the website, on a fresh machine.
#   bash scripts/setup.sh
# Creates .venv/, installs torch (kept if already installed; CPU build when there is
# no NVIDIA GPU), the requirements and genimg_lib (editable), the JavaScript that
# the website serves itself, then builds the book strictly (warnings are errors).
#
# Environment knobs (all optional):
#   PYTHON              the interpreter that creates .venv (default: python3)
#   GENIMG_TORCH        the torch to install when none is present
#                       (default: torch==2.13.0 without a GPU, torch>=2.1 with one)
#   GENIMG_TORCH_INDEX  an extra package index for torch, e.g. the CPU-only
#                       https://download.pytorch.org/whl/cpu
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install --progress-bar off)

if .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "== keeping torch $(.venv/bin/python -c 'import torch; print(torch.__version__)')"
else
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    torch_spec=${GENIMG_TORCH:-"torch>=2.1"}      # an NVIDIA GPU: the CUDA build
  else
    torch_spec=${GENIMG_TORCH:-"torch==2.13.0"}   # no GPU: the CPU build
  fi
  echo "== installing $torch_spec"
  "${PIP[@]}" "$torch_spec" ${GENIMG_TORCH_INDEX:+--extra-index-url "$GENIMG_TORCH_INDEX"}
fi

echo "== installing requirements and genimg_lib"
"${PIP[@]}" -r requirements.txt -e .

echo "== installing the website's JavaScript (MathJax comes with sphinx-mathjax-offline)"
npm ci --no-audit --no-fund --loglevel=error
bash scripts/vendor_assets.sh

echo "== building the website (strict: warnings are errors)"
rm -rf _build   # a clean build: Sphinx's caches would hide warnings from earlier runs
.venv/bin/jupyter-book build . --warningiserror --nitpick --keep-going

echo
echo "The website is built. Open it in a browser:"
echo "  $(pwd)/_build/html/index.html"
