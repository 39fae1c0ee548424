#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine with Python 3.11:
#   .venv         converter + edge + tests, LiteRT runtime, numpy 2, TensorFlow (CPU)
#   .venv-tflite  edge + tests under tflite-runtime 2.14 with numpy < 2 (no TensorFlow)
#   .venv-edge    the edge alone with LiteRT (what a Pi gets): enough for the demo, no TensorFlow
#   .venv-spb     an independent Sparkplug B host application for the tests: pysparkplug with its own
#                 paho-mqtt 1.x and protobuf (nothing of ours is installed there)
#   tests/js/node_modules   Ajv (JSON Schema, strict mode) from the npm registry, for tests/test_schemas.py
# plus Mosquitto, Node.js and, for the console's browser tests, Debian's chromium, from Debian when we are
# root and they are missing. Playwright drives that chromium: it never downloads a browser of its own.
# Usage: scripts/setup-env.sh [main|tflite|edge|spb|js|all]   (default: all = main + tflite + spb + js, what the tests need)
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v mosquitto_sub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# tests/test_systemd.py and tests/test_install.py: shellcheck, and the wheel built with Debian's own setuptools.
command -v shellcheck >/dev/null 2>&1 || need_apt+=(shellcheck)
/usr/bin/python3 -c 'import setuptools, wheel' >/dev/null 2>&1 || need_apt+=(python3-setuptools python3-wheel)
if [ "$what" = all ] || [ "$what" = js ]; then
  command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
  command -v npm >/dev/null 2>&1 || need_apt+=(npm)
fi
if [ "$what" = main ] || [ "$what" = all ]; then
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
fi
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${need_apt[*]} from Debian" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "setup: ${need_apt[*]} missing and not root: run 'sudo apt-get install ${need_apt[*]}'" >&2
  fi
fi

stamp_of() { cat pyproject.toml scripts/setup-env.sh | sha256sum | cut -c1-16; }

make_env() {  # make_env DIR EXTRAS [extra pip args...]
  local dir="$1" extras="$2"; shift 2
  local stamp="$dir/.conveyor-stamp"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(stamp_of)" ] && [ -x "$dir/bin/python" ]; then
    return 0
  fi
  echo "setup: preparing $dir (first run takes a few minutes)" >&2
  [ -x "$dir/bin/python" ] || "$PY" -m venv "$dir"
  "$dir/bin/python" -m pip install -q --disable-pip-version-check -U pip >/dev/null
  "$dir/bin/python" -m pip install -q --disable-pip-version-check -e ".[$extras]" "$@"
  stamp_of > "$stamp"
}

if [ "$what" = main ] || [ "$what" = all ]; then
  make_env .venv "converter,litert,camera,dev,protoc,browser"
  # Genuine Keras 2 (tf-keras) only to write a legacy .h5 in the tests; --no-deps so it
  # reuses tensorflow-cpu instead of pulling the full tensorflow wheel.
  .venv/bin/python -c "import tf_keras" 2>/dev/null || \
    .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps "tf-keras==$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("tensorflow-cpu"))')"
fi
if [ "$what" = edge ]; then
  make_env .venv-edge "litert"
fi
if [ "$what" = tflite ] || [ "$what" = all ]; then
  make_env .venv-tflite "tflite,camera,dev" "numpy<2" "opencv-python-headless<4.11"
fi
if [ "$what" = spb ] || [ "$what" = all ]; then
  # Small on purpose: three packages. Pinned: pysparkplug 0.6.1 needs paho-mqtt < 2.
  spb_pins=(pysparkplug==0.6.1 paho-mqtt==1.6.1)
  if [ ! -x .venv-spb/bin/python ] || [ "$(cat .venv-spb/.conveyor-stamp 2>/dev/null)" != "${spb_pins[*]}" ]; then
    echo "setup: preparing .venv-spb (independent Sparkplug host for the tests)" >&2
    [ -x .venv-spb/bin/python ] || "$PY" -m venv .venv-spb
    .venv-spb/bin/python -m pip install -q --disable-pip-version-check "${spb_pins[@]}"
    echo "${spb_pins[*]}" > .venv-spb/.conveyor-stamp
  fi
fi
if [ "$what" = js ] || [ "$what" = all ]; then
  # Ajv for the schema tests, installed locally from the committed lock file (no global install).
  js_stamp="$(sha256sum tests/js/package-lock.json | cut -c1-16)"
  if [ "$(cat tests/js/node_modules/.conveyor-stamp 2>/dev/null)" != "$js_stamp" ]; then
    echo "setup: installing Ajv into tests/js/node_modules" >&2
    (cd tests/js && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$js_stamp" > tests/js/node_modules/.conveyor-stamp
  fi
fi
