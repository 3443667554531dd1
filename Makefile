# Two commands do all the set-up: `make demo` and `make test` create .venv when missing and install
# everything (scripts/bootstrap.sh), then run the main job on the embedded demo / the test suite.
PY := .venv/bin/python
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: setup demo demo-go test gates bench calibrate clean

setup:
	@bash scripts/bootstrap.sh

demo: setup
	.venv/bin/stage1_5 run config/demo.yaml

demo-go: setup
	.venv/bin/stage1_5 run config/demo_go.yaml

test: setup
	@bash scripts/install_report_tools.sh
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow" $(PYTEST_ARGS)

gates: setup
	@bash scripts/install_report_tools.sh
	bash scripts/gates.sh $(GATES_ARGS)

# every ratio and figure of issues 13 and 25 in one run (each tool prints the machine's load): the probe
# stage at the full experiment's size and the engine against the first landing's on identical work, the
# engine vs the sklearn loop, the engine quiet vs beside two busy processes, extraction before/after at
# the released 0.6B shape (1.7B on a GPU), the probe stage at N = 720 / 10k / 30k / 100k with growth exponents
bench: setup
	uptime
	$(PY) benchmarks/bench_probe_stage.py --no-progress
	$(PY) benchmarks/bench_probes.py
	$(PY) benchmarks/bench_probes.py --contended
	$(PY) benchmarks/bench_extract.py
	$(PY) benchmarks/bench_scale.py --timeout $(BENCH_SCALE_TIMEOUT)
	$(PY) benchmarks/bench_scale.py --configured --sizes 720 10000 --timeout $(BENCH_SCALE_TIMEOUT)

BENCH_SCALE_TIMEOUT ?= 1200

calibrate: setup
	$(PY) -m pytest -q -p no:cacheprovider -m slow tests/test_probes_calibration.py
	$(PY) benchmarks/calibrate.py all --replicates 100

clean:
	rm -rf runs reports/allure-results reports/allure-report reports/*.json .stage1_5_cache
