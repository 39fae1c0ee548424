#!/usr/bin/env bash
# The whole test suite on a fresh machine: set-up (idempotent), lint, types, then the tests in
# both runtime environments (LiteRT + numpy 2 with TensorFlow; tflite-runtime 2.14 + numpy 1).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-env.sh all
echo "== ruff"
.venv/bin/ruff check edge converter tests benchmarks
echo "== mypy (strict on edge/)"
.venv/bin/mypy --strict edge
.venv/bin/mypy converter benchmarks
# Two worker processes, each test file on one of them (a file's module fixtures, such as a trained or converted
# model, are built once): one pytest process keeps about 0.8 of one core busy, the rest is waiting on brokers,
# daemons and subprocesses. TEST_WORKERS=0 runs in one process.
parallel=(-n "${TEST_WORKERS:-2}" --dist loadfile)
[ "${TEST_WORKERS:-2}" = 0 ] && parallel=()
echo "== tests: ai-edge-litert, numpy 2, TensorFlow (all tests)"
CONVEYOR_TEST_RUNTIME=ai_edge_litert .venv/bin/python -m pytest "${parallel[@]}" "$@"
echo "== tests: tflite-runtime 2.14, numpy < 2 (edge tests; TensorFlow, output-side and most scenario tests run above)"
# The output side (MQTT, outbox, chaos) does not touch the model runtime, and the detection scenarios are decision
# logic over the model's outputs (the runtime's part is tests/test_inference.py): they run once, above, except the
# reviewer's checks (both_runtimes). That saves about 3 minutes of the suite on a 2-core machine.
CONVEYOR_TEST_RUNTIME=tflite_runtime .venv-tflite/bin/python -m pytest "${parallel[@]}" -m "not tensorflow and not output_side and (not scenario or both_runtimes)" "$@"
