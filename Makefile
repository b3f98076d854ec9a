# alpseg: `make demo` runs the main job on the embedded miniature world; `make test` runs the tests.
# Both set up .venv first (idempotent; see scripts/setup_env.sh and docs/install.md).
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: setup test demo demo-full bench clean-venv

setup:
	bash scripts/setup_env.sh

# Two pytest runs: the suite on two worker processes, then the tests marked `solo` (the demo's 2-thread
# robustness check) alone. Run beside the workers that check took 29 min of a 30-min suite; alone about 10.
# Exit status 5 ("no tests collected") is not a failure there only when PYTEST_ARGS names other tests;
# in the full run (CI) a missing solo test fails.
test: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 -m "not solo" $(PYTEST_ARGS)
	OMP_NUM_THREADS=1 $(PY) -m pytest -m solo $(PYTEST_ARGS) || { rc=$$?; [ $$rc -eq 5 ] && [ -n "$(strip $(PYTEST_ARGS))" ]; }

# The FCOS-MO rows of a miniature Table 3 over seeds 0,1,2 (mean ± std, per seed, ALP lift); see docs/demo.md.
demo: setup
	$(PY) tools/run_demo.py --output output/demo

# All of Table 3 in miniature: the FCOS-MO rows plus the four Mask R-CNN* rows (reuses make demo's runs).
demo-full: setup
	$(PY) tools/run_demo.py --output output/demo --full

bench: setup
	$(PY) bench/run.py --quick --output output/bench.json

clean-venv:
	rm -rf .venv
