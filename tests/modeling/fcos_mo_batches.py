"""Hand-made FCOS-MO inputs: a tiny config and batches with the instance fields of SPEC 2.2."""
import os

import torch

from detectron2.structures import BitMasks, Boxes, Instances

from alpseg.config import load_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PHRASES = ["dog", "cat", "small white dog", "tennis racket", "sombrero", "dolphin", "person", "car"]
EMBED_DIM = 8


def tiny_overrides(bank_path: str = ""):
    """Turn any FCOS-MO config into a ResNet-18-like model with a 32-channel FPN and an 8-d phrase space.

    Norm layers keep each config's choice (SyncBN runs as plain BN in a single CPU process).
    """
    return [
        "MODEL.DEVICE", "cpu",
        "MODEL.WEIGHTS", "",
        "MODEL.RESNETS.DEPTH", "18",
        "MODEL.RESNETS.RES2_OUT_CHANNELS", "64",
        "MODEL.FPN.OUT_CHANNELS", "32",  # GroupNorm (Table 2 configs) needs multiples of 32
        "MODEL.FCOS_MO.NUM_CONVS", "2",
        "MODEL.ROI_MASK_HEAD.HOURGLASS_WIDTH", "32",
        "MODEL.ROI_MASK_HEAD.CONV_DIM", "32",
        "MODEL.OPEN_VOCAB.EMBED_DIM", str(EMBED_DIM),
        "MODEL.OPEN_VOCAB.PRETRAINED", "none",
        "MODEL.OPEN_VOCAB.EMBEDDINGS", bank_path,
        "MODEL.OPEN_VOCAB.TEST_VOCABULARY", "dog,cat,sombrero",
        "SOLVER.AMP.ENABLED", "False",
    ]


def tiny_fcos_mo_cfg(bank_path: str = ""):
    """The paper's base config (SyncBN in backbone, FPN, towers and mask head) at tiny size."""
    return load_config(os.path.join(REPO, "configs", "Base-FCOS-MO.yaml"), tiny_overrides(bank_path))


def make_instances(size, boxes, phrases, is_alp, has_mask):
    """Instances with the fields of SPEC 2.2; masks fill the inner half of each masked box."""
    h, w = size
    inst = Instances(size)
    inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.gt_phrases = list(phrases)
    inst.gt_is_alp = torch.tensor(is_alp, dtype=torch.bool)
    inst.gt_has_mask = torch.tensor(has_mask, dtype=torch.bool)
    if any(has_mask):
        masks = torch.zeros(len(boxes), h, w, dtype=torch.bool)
        for i, (x0, y0, x1, y1) in enumerate(boxes):
            if has_mask[i]:
                cx, cy, bw, bh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 4, (y1 - y0) / 4
                masks[i, int(cy - bh):int(cy + bh), int(cx - bw):int(cx + bw)] = True
        inst.gt_masks = BitMasks(masks)
    return inst


def make_batch(instances, seed=0):
    gen = torch.Generator().manual_seed(seed)
    batch = []
    for inst in instances:
        h, w = inst.image_size
        batch.append({"image": torch.randint(0, 256, (3, h, w), generator=gen).float(), "instances": inst,
                      "height": h, "width": w})
    return batch
