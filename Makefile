# The two commands the README starts with, plus the model, benchmark, soak and Raspberry Pi targets.
.PHONY: demo test model bench bench-quick soak pi-bundle pi-check

demo:            ## the product on this machine: broker + daemon + bundled model + simulated camera
	scripts/setup-env.sh edge
	.venv-edge/bin/edge-daemon demo

test:            ## lint, types and the whole test suite in both runtime environments
	scripts/test.sh

model:           ## rebuild the bundled int8 model (synth + train + quantize + second renderer, ~25 min on 2 cores)
	scripts/setup-env.sh main
	.venv/bin/conveyor-convert build-default --workdir build/default-model

bench:           ## the benchmark harness (< 10 min on 2 cores); results in bench-results/
	scripts/setup-env.sh all
	.venv/bin/python -m benchmarks.run

bench-quick:     ## the same, fewer repetitions (about 4 min on 2 cores)
	scripts/setup-env.sh all
	.venv/bin/python -m benchmarks.run --quick

soak:            ## chaos for longer: 200 rounds of SIGKILL to daemon and broker, every event once (~12 min)
	scripts/setup-env.sh main
	CHAOS_ROUNDS=$${CHAOS_ROUNDS:-200} .venv/bin/python -m pytest tests/test_chaos.py --timeout 3600 -q

pi-bundle:       ## dist/conveyor-watch-<version>-pi-aarch64.tar: installs on 64-bit Raspberry Pi OS Bookworm with no network
	scripts/pi-bundle.sh

pi-check:        ## (root, ~10 min; +4 min the first time) that bundle installed offline in an arm64 Bookworm root under qemu: events, upgrade, rollback, uninstall
	scripts/pi-check.sh
