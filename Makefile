# Two commands do all the set-up: `make demo` and `make test` create .venv when missing and install
# everything (scripts/bootstrap.sh), then run the main job on the embedded demo / the test suite.
PY := .venv/bin/python
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: setup demo demo-go test gates bench clean

setup:
	@bash scripts/bootstrap.sh

demo: setup
	.venv/bin/stage1_5 run config/demo.yaml

demo-go: setup
	.venv/bin/stage1_5 run config/demo_go.yaml

test: setup
	@bash scripts/install_report_tools.sh
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

gates: setup
	@bash scripts/install_report_tools.sh
	bash scripts/gates.sh $(GATES_ARGS)

bench: setup
	$(PY) benchmarks/bench_probes.py
	$(PY) benchmarks/bench_extract.py

clean:
	rm -rf runs reports/allure-results reports/allure-report reports/*.json .stage1_5_cache
