"""Robustness of the demo's finding (issue #23): ALPs lift novel AP50 over the open-vocabulary baseline
by >= 5 points on average and on every seed, also with another number of CPU threads per model
(another thread count changes the float reduction order the way another machine does).

A reduced-size ``make demo``: its FCOS-MO open-vocabulary and ALP rows over seeds 0, 1, 2, through the
same tools, configs and recipe, on a smaller world (48 COCO and 96 LocNar-OID training images, 60
validation images; still all 12 novel classes), 300 iterations instead of 400, and narrower heads
(FPN, towers and hourglass at half width or less, two convs per tower) so that six models train in
minutes. ``make test`` runs it with 2 threads per model (the demo itself uses 1); with
``ALPSEG_DEMO_ROBUSTNESS=1`` the 1-thread run is added. docs/demo.md gives the measured values.
"""
import os

import pytest

from alpseg.data.miniature import MiniatureSizes
from alpseg.demo.table3 import run_table3

REDUCED = MiniatureSizes(coco_train=48, coco_val=4, oid_train=96, oid_val=60, oid_test=2, voc=False)
NARROW_HEADS = ["MODEL.FPN.OUT_CHANNELS", "32", "MODEL.FCOS_MO.NUM_CONVS", "2",
                "MODEL.ROI_MASK_HEAD.HOURGLASS_WIDTH", "16"]
SEEDS = [0, 1, 2]
ITERATIONS = 300


@pytest.mark.timeout(3000)
@pytest.mark.parametrize("threads", [
    2,
    pytest.param(1, marks=pytest.mark.skipif(os.environ.get("ALPSEG_DEMO_ROBUSTNESS") != "1",
                                             reason="the 1-thread run (set ALPSEG_DEMO_ROBUSTNESS=1)")),
])
def test_alp_lift_holds_on_every_seed(tmp_path, threads):
    results = run_table3(str(tmp_path / f"t{threads}"), seeds=SEEDS, parallel=1, iterations=ITERATIONS,
                         threads=threads, sizes=REDUCED, models=["open_vocab", "fcos_mo_alp"],
                         extra_opts=NARROW_HEADS, pictures=False, progress=False)
    lift = results["lift"]["fcos_mo_alp"]
    assert len(lift["per_seed"]) == len(SEEDS)
    assert lift["mean"] >= 5.0, lift
    assert all(v > 0 for v in lift["per_seed"]), lift
    assert results["environment"]["threads_per_model"] == threads
