"""bench/bench_fcos_mo.py: every model is timed in one loop, another hourglass width included, and each
FCOS-MO variant gets its worst-case and realistic inference ratios."""
import os

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(REPO_ROOT, "bench"))
    import bench_fcos_mo
    return bench_fcos_mo


@pytest.mark.timeout(900)
def test_another_width_is_timed_in_the_same_loop(bench):
    report = bench.run((64, 96), num_images=1, instances_per_image=2, warmup=0, repeats=1, also_widths=[32])
    assert report["failed"] == {"train": {}, "infer": {}}
    assert report["hourglass_widths"] == {"fcos_mo": 128, "fcos_mo_w32": 32}  # the config's width, and the extra one
    for k in ("fcos_mo", "fcos_mo_w32"):
        for key in (f"{k}_train_vs_d2_fcos", f"{k}_infer_vs_d2_fcos", f"{k}_infer_vs_d2_fcos_realistic"):
            assert report["ratios"][key] > 0, key
    assert set(report["infer_s"]) == {"d2_fcos", "fcos_mo", "fcos_mo_no_mask", "fcos_mo_realistic",
                                      "fcos_mo_w32", "fcos_mo_w32_realistic"}


def test_also_width_flag_reaches_the_run(bench):
    seen = {}
    bench.cli(lambda size, images, instances, **kw: seen.update(kw) or {}, "doc",
              ["--quick", "--also-width", "128", "--also-width", "32"], widths=True)
    assert seen["also_widths"] == [128, 32]
