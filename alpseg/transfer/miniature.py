"""The transfer suite on miniature data: every dataset tree, and settings small enough for 2 CPU cores.

``tools/eval_transfer.py --miniature`` writes the trees with :func:`write_miniature_transfer_datasets`
(VOC2007 + VOC2012, an ImageNet-style ImageFolder, iNat 2018, COCO and LVIS v1, all in their real
formats, from :mod:`alpseg.data.miniature`) and runs every task with :data:`MINIATURE_OVERRIDES`
and :data:`MINIATURE_D2_OPTS`. The numbers mean nothing; the run proves the whole path (conversion,
every protocol, the table) works on this machine before hours of real training.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Tuple

__all__ = ["MINIATURE_SIZES", "MINIATURE_OVERRIDES", "MINIATURE_D2_OPTS", "write_miniature_transfer_datasets"]

#: Images of the miniature COCO (and so LVIS); the VOC and classification trees have fixed sizes.
MINIATURE_SIZES: Dict[str, int] = {"coco_train": 4, "coco_val": 2, "image_size": 64}

_CLASSIFY = {"epochs": 1, "batch_size": 8, "eval_batch_size": 16, "crop": 32, "resize": 36, "num_workers": 0}

#: Protocol fields of the non-detectron2 tasks (``--set`` style).
MINIATURE_OVERRIDES: Dict[str, Dict[str, Any]] = {
    "voc07_svm": {"resize": 64, "crop": 56, "batch_size": 30, "num_workers": 0, "costs": (0.1, 1.0)},
    "in1k_linear": dict(_CLASSIFY),
    "inat18": dict(_CLASSIFY, lr_steps=(1,)),
}

#: detectron2 overrides for every detectron2 task: 2 iterations on 64-pixel images, few proposals.
MINIATURE_D2_OPTS: Tuple[str, ...] = (
    "SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "2", "SOLVER.CHECKPOINT_PERIOD", "1000",
    "INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.MAX_SIZE_TRAIN", "96", "INPUT.MIN_SIZE_TEST", "64",
    "INPUT.MAX_SIZE_TEST", "96", "TEST.PRECISE_BN.NUM_ITER", "1", "DATALOADER.NUM_WORKERS", "0",
    "MODEL.RPN.PRE_NMS_TOPK_TRAIN", "100", "MODEL.RPN.PRE_NMS_TOPK_TEST", "50", "MODEL.RPN.POST_NMS_TOPK_TRAIN", "50",
    "MODEL.RPN.POST_NMS_TOPK_TEST", "5", "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "8", "TEST.DETECTIONS_PER_IMAGE", "10",
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0",
)


def write_miniature_transfer_datasets(root: str, seed: int = 0) -> str:
    """Write (or reuse, when already written with the same settings) every tree the tasks read; returns ``root``."""
    from alpseg.data.miniature import MANIFEST, MiniatureSizes, write_miniature_world

    if os.path.isdir(root) and os.listdir(root) and not os.path.isfile(os.path.join(root, MANIFEST)):
        raise FileExistsError(f"refusing to write miniature datasets into {root}: it holds files but no miniature "
                              f"{MANIFEST}; choose an empty or new folder for --datasets-root")
    sizes = MiniatureSizes(coco_train=MINIATURE_SIZES["coco_train"], coco_val=MINIATURE_SIZES["coco_val"],
                           oid_train=2, oid_val=2, oid_test=2, image_size=MINIATURE_SIZES["image_size"], voc=True)
    write_miniature_world(root, seed=seed, sizes=sizes)
    for rel in ("VOC2007", "VOC2012", "imagenet", "inat2018", "coco", "lvis"):
        if not os.path.isdir(os.path.join(root, rel)):
            raise RuntimeError(f"the miniature world did not write {os.path.join(root, rel)}; "
                               "alpseg.data.miniature changed: update alpseg/transfer/miniature.py")
    return root
