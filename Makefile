# The two commands the README starts with, plus the model and benchmark targets.
.PHONY: demo test model bench bench-quick

demo:            ## the product on this machine: broker + daemon + bundled model + simulated camera
	scripts/setup-env.sh edge
	.venv-edge/bin/edge-daemon demo

test:            ## lint, types and the whole test suite in both runtime environments
	scripts/test.sh

model:           ## rebuild the bundled int8 model (synth + train + quantize + second renderer, ~15 min on 2 cores)
	scripts/setup-env.sh main
	.venv/bin/conveyor-convert build-default --workdir build/default-model

bench:           ## the benchmark harness (< 10 min on 2 cores); results in bench-results/
	scripts/setup-env.sh all
	.venv/bin/python -m benchmarks.run

bench-quick:     ## the same, fewer repetitions (< 2 min)
	scripts/setup-env.sh all
	.venv/bin/python -m benchmarks.run --quick
