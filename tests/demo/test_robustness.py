"""Robustness of the demo's finding (issue #23): ALPs lift novel AP50 over the open-vocabulary baseline
by >= 5 points on average and on every seed, also with another number of CPU threads per model
(another thread count changes the float reduction order the way another machine does).

A reduced-size ``make demo``: its FCOS-MO open-vocabulary and ALP rows over seeds 0, 1, 2, through the
same tools, configs and recipe, on a smaller world (48 COCO and 96 LocNar-OID training images, 60
validation images; still all 12 novel classes) and 300 iterations instead of 400: six models, about
95 s each with 2 threads on an otherwise idle 2-core machine. ``make test`` runs it with 2 threads
per model (the demo itself uses 1); ``ALPSEG_DEMO_ROBUSTNESS=1`` adds the 1-thread run. Measured
(2 threads): lift +13.8 +- 4.3, per seed +18.3, +13.3, +9.8 (docs/demo.md, which also says why the
heads are not narrowed to save more time: with half-width heads seed 1 failed).
"""
import os

import pytest

from alpseg.data.miniature import MiniatureSizes
from alpseg.demo.table3 import run_table3

REDUCED = MiniatureSizes(coco_train=48, coco_val=4, oid_train=96, oid_val=60, oid_test=2, voc=False)
SEEDS = [0, 1, 2]
ITERATIONS = 300


@pytest.mark.solo  # 2 threads per model: alone it takes ~10 min, beside the xdist workers 17-29 min
@pytest.mark.timeout(3000)
@pytest.mark.parametrize("threads", [
    2,
    pytest.param(1, marks=pytest.mark.skipif(os.environ.get("ALPSEG_DEMO_ROBUSTNESS") != "1",
                                             reason="the 1-thread run (set ALPSEG_DEMO_ROBUSTNESS=1)")),
])
def test_alp_lift_holds_on_every_seed(tmp_path, threads):
    results = run_table3(str(tmp_path / f"t{threads}"), seeds=SEEDS, parallel=1, iterations=ITERATIONS,
                         threads=threads, sizes=REDUCED, models=["open_vocab", "fcos_mo_alp"],
                         pictures=False, progress=False)
    lift = results["lift"]["fcos_mo_alp"]
    assert len(lift["per_seed"]) == len(SEEDS)
    assert lift["mean"] >= 5.0, lift
    assert all(v > 0 for v in lift["per_seed"]), lift
    assert results["environment"]["threads_per_model"] == threads
