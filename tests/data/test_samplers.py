"""Alternating multi-dataset batches: schedule values, sharding, and the real loader with 2 workers."""
import os

import pytest
from detectron2.data import DatasetCatalog
from detectron2.structures import BoxMode

from alpseg.config import get_cfg
from alpseg.data.build import build_alpseg_train_loader, get_alpseg_dataset_dicts
from alpseg.data.samplers import AlternatingBatchSchedule, InfiniteShuffledStream

from handmade_formats import write_image


def test_stream_is_a_sequence_of_seeded_permutations():
    s = InfiniteShuffledStream(7, seed=5)
    first = s.slice(0, 21)
    for e in range(3):
        assert sorted(first[7 * e: 7 * e + 7]) == list(range(7))
    assert first[:7] != first[7:14]  # epochs are shuffled differently
    assert InfiniteShuffledStream(7, seed=5).slice(0, 21) == first  # deterministic
    assert InfiniteShuffledStream(7, seed=6).slice(0, 21) != first
    assert InfiniteShuffledStream(4, seed=0, shuffle=False).slice(3, 9) == [3, 0, 1, 2, 3, 0]
    assert s[100] == s.slice(100, 101)[0]  # random access agrees with sequential access


def test_datasets_take_turns_whatever_their_sizes():
    sched = AlternatingBatchSchedule([3, 1000], batch_size=2, seed=0)
    assert [sched.dataset_at(i) for i in range(6)] == [0, 1, 0, 1, 0, 1]
    # the small dataset is cycled through epoch after epoch: 3 batches of 2 = two full epochs of 3
    small = [j for i in range(0, 6, 2) for j in sched.indices_at(i)[1]]
    assert sorted(small[:3]) == [0, 1, 2] and sorted(small[3:]) == [0, 1, 2]
    ratio = AlternatingBatchSchedule([5, 5, 5], batch_size=1, seed=0, ratio=[2, 1, 3])
    assert [ratio.dataset_at(i) for i in range(12)] == [0, 0, 1, 2, 2, 2] * 2
    assert [ratio.batch_number(i) for i in range(12)] == [0, 1, 0, 0, 1, 2, 2, 3, 1, 3, 4, 5]


def test_processes_share_each_batch_without_overlap():
    one = AlternatingBatchSchedule([50, 80], batch_size=4, seed=3)
    ranks = [AlternatingBatchSchedule([50, 80], batch_size=2, seed=3, rank=r, world_size=2) for r in range(2)]
    for it in range(30):
        d, whole = one.indices_at(it)
        parts = [r.indices_at(it) for r in ranks]
        assert all(p[0] == d for p in parts)  # every process uses the same dataset at an iteration
        assert parts[0][1] + parts[1][1] == whole


@pytest.mark.parametrize("kwargs, match", [
    ({"ratio": [1]}, "one positive integer per training dataset"),
    ({"ratio": [1, 0]}, "one positive integer"),
    ({"rank": 2, "world_size": 2}, "invalid"),
])
def test_bad_schedules_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AlternatingBatchSchedule([3, 4], batch_size=2, seed=0, **kwargs)


def _register_tiny(root, name, n, size):
    """A registered dataset of ``n`` tiny images with one ALP box each (file names start with ``name``)."""
    dicts = []
    for i in range(n):
        path = write_image(os.path.join(root, f"{name}_{i:03d}.png"), size, size, value=10 + i)
        dicts.append({"file_name": path, "image_id": f"{name}{i}", "height": size, "width": size,
                      "annotations": [{"bbox": [2, 2, size - 2, size - 2], "bbox_mode": BoxMode.XYXY_ABS,
                                       "phrase": name, "is_alp": True}]})
    if name in DatasetCatalog:
        DatasetCatalog.remove(name)
    DatasetCatalog.register(name, lambda: dicts)
    return dicts


def _cfg(names, workers=2, seed=7, batch=2):
    cfg = get_cfg()
    cfg.DATASETS.TRAIN = tuple(names)
    cfg.DATALOADER.ALTERNATE_DATASETS = True
    cfg.DATALOADER.NUM_WORKERS = workers
    cfg.SOLVER.IMS_PER_BATCH = batch
    cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN = (32,), 32
    cfg.SEED = seed
    return cfg


def _files(loader, n):
    out = []
    for i, batch in enumerate(loader):
        out.append([os.path.basename(b["file_name"]) for b in batch])
        if i + 1 == n:
            break
    return out


def test_loader_with_two_workers_alternates_single_dataset_batches(tmp_path):
    small = _register_tiny(str(tmp_path), "h5small", 3, 24)
    big = _register_tiny(str(tmp_path), "h5big", 11, 24)
    cfg = _cfg(["h5small", "h5big"])
    got = _files(build_alpseg_train_loader(cfg), 20)
    for i, names in enumerate(got):
        assert len(names) == 2
        assert all(n.startswith("h5small" if i % 2 == 0 else "h5big") for n in names), (i, names)
    # exactly the images the schedule names, in iteration order (workers interleave correctly)
    sched = AlternatingBatchSchedule([3, 11], batch_size=2, seed=7)
    expect = [[os.path.basename([small, big][d][j]["file_name"]) for j in idx]
              for d, idx in (sched.indices_at(i) for i in range(20))]
    assert got == expect
    # reproducible, and independent of the number of workers
    assert _files(build_alpseg_train_loader(_cfg(["h5small", "h5big"], workers=0)), 20) == got
    assert _files(build_alpseg_train_loader(_cfg(["h5small", "h5big"], seed=8)), 20) != got
    # a resumed run continues with the same batches
    assert _files(build_alpseg_train_loader(_cfg(["h5small", "h5big"]), start_iter=13), 7) == got[13:]


def test_unreadable_images_are_replaced_within_their_dataset(tmp_path):
    good = _register_tiny(str(tmp_path), "h5good", 4, 24)
    bad = _register_tiny(str(tmp_path), "h5bad", 4, 24)
    for d in bad[:2]:
        with open(d["file_name"], "wb") as f:
            f.write(b"corrupt")
    got = _files(build_alpseg_train_loader(_cfg(["h5good", "h5bad"], workers=0)), 10)
    for i, names in enumerate(got):
        assert all(n.startswith("h5good" if i % 2 == 0 else "h5bad") for n in names)
        if i % 2:
            assert all(n in ("h5bad_002.png", "h5bad_003.png") for n in names)
    assert len(good) == 4


def test_standard_loader_and_config_errors(tmp_path):
    _register_tiny(str(tmp_path), "h5std", 5, 24)
    cfg = _cfg(["h5std"], workers=0)
    cfg.DATALOADER.ALTERNATE_DATASETS = False
    batch = next(iter(build_alpseg_train_loader(cfg)))
    assert len(batch) == 2 and all(b["instances"].gt_is_alp.all() for b in batch)
    cfg.DATALOADER.ALTERNATE_RATIO = [1]
    with pytest.raises(ValueError, match="ALTERNATE_DATASETS is False"):
        build_alpseg_train_loader(cfg)
    cfg = _cfg(["h5std"], workers=0)
    cfg.DATALOADER.SAMPLER_TRAIN = "RepeatFactorTrainingSampler"
    with pytest.raises(ValueError, match="cannot be combined"):
        build_alpseg_train_loader(cfg)


def test_empty_filter_keeps_image_level_phrase_records(tmp_path):
    path = write_image(str(tmp_path / "x.png"), 24, 24)
    dicts = [{"file_name": path, "image_id": 1, "annotations": [], "image_phrases": ["a dog"]},
             {"file_name": path, "image_id": 2, "annotations": []},
             {"file_name": path, "image_id": 3,
             "annotations": [{"bbox": [0, 0, 5, 5], "iscrowd": 1, "phrase": "people"}]}]
    DatasetCatalog.register("h5phrases", lambda: dicts)
    try:
        assert [d["image_id"] for d in get_alpseg_dataset_dicts("h5phrases")] == [1]
        assert len(get_alpseg_dataset_dicts("h5phrases", filter_empty=False)) == 3
    finally:
        DatasetCatalog.remove("h5phrases")


def _lsj_batches(cfg, n, rank=0, world=1, start_iter=0, monkeypatch=None):
    """(image tensor, ALP box) of every image of the first ``n`` batches of ``rank``'s loader."""
    from alpseg.data import build

    monkeypatch.setattr(build.comm, "get_world_size", lambda: world)
    monkeypatch.setattr(build.comm, "get_rank", lambda: rank)
    out = []
    for i, batch in enumerate(build_alpseg_train_loader(cfg, start_iter=start_iter)):
        out.append([(b["image"], b["instances"].gt_boxes.tensor) for b in batch])
        if i + 1 == n:
            return out


def _same(a, b):
    return all(x[0].equal(y[0]) and x[1].equal(y[1]) for x, y in zip(a, b)) and len(a) == len(b)


@pytest.mark.parametrize("alternate", [True, False])
def test_augmentation_is_per_global_batch_slot(tmp_path, monkeypatch, alternate):
    """One image repeated: only augmentation (LSJ scale/crop, flip, box quantization) tells slots apart.
    Ranks draw differently; 2 ranks x 2 images draw exactly what 1 process x 4 images draws, with any
    number of workers, and a loader started at iteration 3 continues the same draws."""
    path = write_image(str(tmp_path / "one.png"), 40, 56, value=30)
    dicts = [{"file_name": path, "image_id": i, "height": 40, "width": 56,
              "annotations": [{"bbox": [3, 5, 41, 33], "bbox_mode": BoxMode.XYXY_ABS, "phrase": "dog", "is_alp": True}]}
             for i in range(3)]
    DatasetCatalog.register("h5repeat", lambda: dicts)
    try:
        cfg = _cfg(["h5repeat"], workers=0, batch=4)
        cfg.DATALOADER.ALTERNATE_DATASETS = alternate
        cfg.INPUT.LSJ.ENABLED, cfg.INPUT.LSJ.IMAGE_SIZE = True, 48
        cfg.INPUT.ALP.BOX_QUANTIZATION = [0, 8, 16, 32]
        whole = _lsj_batches(cfg, 5, monkeypatch=monkeypatch)
        r0 = _lsj_batches(cfg, 5, rank=0, world=2, monkeypatch=monkeypatch)
        r1 = _lsj_batches(cfg, 5, rank=1, world=2, monkeypatch=monkeypatch)
        for it in range(5):
            assert _same(r0[it] + r1[it], whole[it]), it  # bit-identical to the one-process global batch
            assert not _same(r0[it], r1[it]), it  # the ranks' draws differ
        # the slots of one batch differ from each other too (not one draw repeated)
        assert not whole[0][0][0].equal(whole[0][1][0]) or not whole[0][0][1].equal(whole[0][1][1])
        cfg.DATALOADER.NUM_WORKERS = 2
        assert all(_same(a, b) for a, b in zip(_lsj_batches(cfg, 5, monkeypatch=monkeypatch), whole))
        assert all(_same(a, b) for a, b in zip(_lsj_batches(cfg, 2, start_iter=3, monkeypatch=monkeypatch), whole[3:]))
        # the process's own RNG stream is left where it was
        import numpy as np
        np.random.seed(5)
        before = np.random.get_state()[1].copy()
        cfg.DATALOADER.NUM_WORKERS = 0  # mapping in this process
        _lsj_batches(cfg, 1, monkeypatch=monkeypatch)
        assert (np.random.get_state()[1] == before).all()
    finally:
        DatasetCatalog.remove("h5repeat")
