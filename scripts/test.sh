#!/usr/bin/env bash
# Run every test: the unit tests, nbval of every notebook under book/ (stored outputs
# compared, after the substitutions in nbval_sanitize.cfg), and the browser check of
# the built website (skipped when there is no site or no Chromium, unless
# GENIMG_REQUIRE_BROWSER=1). Run scripts/setup.sh first.
#   bash scripts/test.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  echo "no .venv here: run 'bash scripts/setup.sh' first" >&2
  exit 2
fi
export GENIMG_PROGRESS=${GENIMG_PROGRESS:-1}
.venv/bin/python -m pytest tests book \
  --nbval --nbval-sanitize-with nbval_sanitize.cfg --nbval-cell-timeout 600 \
  -p no:cacheprovider "$@"
