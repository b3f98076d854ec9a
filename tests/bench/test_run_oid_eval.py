"""bench/run.py times the fast OID metric and the straightforward loop in alternation, on disjoint
parts of the loop's images that together are the whole subset, and checks their APs agree."""
import os

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def run_module(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(REPO_ROOT, "bench"))
    import run
    return run


def test_oid_eval_alternates_fast_metric_and_loop_parts(run_module, monkeypatch):
    import alpseg.evaluation.oid.challenge as oc

    calls = []
    real_loop, real_eval = run_module.bench_oid_eval.run_loop, oc.evaluate_oid_challenge

    def loop(gt, preds):
        calls.append(("loop", sorted(preds)))
        return real_loop(gt, preds)

    def fast(gt, preds, **kw):
        calls.append(("fast" if kw["num_workers"] == 2 else "check", len(preds)))
        return real_eval(gt, preds, **kw)

    monkeypatch.setattr(run_module.bench_oid_eval, "run_loop", loop)
    monkeypatch.setattr(oc, "evaluate_oid_challenge", fast)
    out = run_module._oid_eval(images=5, loop_images=3, rounds=3)
    ids = sorted("%016x" % i for i in range(5))
    assert [c[0] for c in calls] == ["fast", "loop", "check"] * 3
    assert [c[1] for c in calls if c[0] == "fast"] == [5, 5, 5]
    assert [c[1] for c in calls if c[0] == "loop"] == [[ids[0]], [ids[1]], [ids[2]]]
    assert out["images"] == 5 and out["loop_images"] == 3 and out["rounds"] == 3
    assert out["images_per_s"] > 0 and out["loop_images_per_s"] > 0 and 0.0 <= out["mAP"] <= 1.0
