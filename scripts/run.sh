#!/usr/bin/env bash
# Set up, index the bundled seed corpus, show a sample search, then serve the web UI.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
# A new index gets the seed corpus; an existing one refreshes the sources it records, so
# documents added with `qa add` or uploaded in the page survive a restart.
qa index
echo "==> sample search"
qa search "Where do Moscow and Tehran disagree on Assad?" -k 3
echo "==> serving on http://${QA_HOST:-127.0.0.1}:${QA_PORT:-8000}  (Ctrl+C to stop)"
exec qa serve
