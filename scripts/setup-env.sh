#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine with Python 3.11:
#   .venv         converter + edge + tests, LiteRT runtime, numpy 2, TensorFlow (CPU)
#   .venv-tflite  edge + tests under tflite-runtime 2.14 with numpy < 2 (no TensorFlow)
#   .venv-edge    the edge alone with LiteRT (what a Pi gets): enough for the demo, no TensorFlow
# plus Mosquitto from Debian when we are root and it is missing.
# Usage: scripts/setup-env.sh [main|tflite|edge|all]   (default: all = main + tflite, what the tests need)
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
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${need_apt[*]} from Debian" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
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
  make_env .venv "converter,litert,camera,dev"
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
