# alpseg: `make demo` runs the main job on the embedded miniature world; `make test` runs the tests.
# Both set up .venv first (idempotent; see scripts/setup_env.sh and docs/install.md).
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: setup test demo bench clean-venv

setup:
	bash scripts/setup_env.sh

test: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 $(PYTEST_ARGS)

demo: setup
	$(PY) tools/run_demo.py --output output/demo

bench: setup
	$(PY) bench/run.py --quick --output output/bench.json

clean-venv:
	rm -rf .venv
