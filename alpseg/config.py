"""alpseg configuration: every key alpseg adds to a detectron2 ``CfgNode``, and YAML loading.

``add_alpseg_config`` follows detectron2's ``add_*_config`` convention. ``load_config`` resolves
``_BASE_`` chains where a base may be a relative path, an absolute path, or
``model_zoo://<path under detectron2's packaged model_zoo/configs>``. Unknown keys fail loudly
as :class:`ConfigKeyError` (a ``KeyError`` whose message names the YAML file or the command line and
the key), so a typo never goes unnoticed.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

import yaml
from detectron2.config import CfgNode as _D2CfgNode
from detectron2.config import get_cfg as _d2_get_cfg

__all__ = ["AlpsegCfgNode", "ConfigKeyError", "add_alpseg_config", "get_cfg", "load_config", "resolve_base_path"]


class ConfigKeyError(KeyError):
    """An unknown config key; ``str()`` is the one-line message itself (``KeyError`` would quote it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

MODEL_ZOO_PREFIX = "model_zoo://"
BASE_KEY = "_BASE_"


def resolve_base_path(base: str, child_file: str) -> str:
    """Return the file a ``_BASE_`` entry of ``child_file`` refers to."""
    if base.startswith(MODEL_ZOO_PREFIX):
        from detectron2 import model_zoo

        rel = base[len(MODEL_ZOO_PREFIX):]
        try:
            return model_zoo.get_config_file(rel)
        except RuntimeError as e:
            raise FileNotFoundError(
                f"{child_file}: _BASE_ {base!r} is not a config in detectron2's model zoo "
                f"(detectron2/model_zoo/configs/{rel})"
            ) from e
    base = os.path.expanduser(base)
    if not os.path.isabs(base):
        base = os.path.join(os.path.dirname(child_file), base)
    if not os.path.isfile(base):
        raise FileNotFoundError(f"{child_file}: _BASE_ {base!r} does not exist")
    return base


def _merge_dicts(child: Dict[str, Any], base: Dict[str, Any]) -> Dict[str, Any]:
    """Recursively overlay ``child`` on ``base`` (child wins), like detectron2's base merging."""
    out = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge_dicts(value, out[key])
        else:
            out[key] = value
    return out


class AlpsegCfgNode(_D2CfgNode):
    """A detectron2 ``CfgNode`` whose ``_BASE_`` may also point into detectron2's model zoo."""

    @classmethod
    def load_yaml_with_base(cls, filename: str, allow_unsafe: bool = False) -> Dict[str, Any]:
        with open(filename, "r", encoding="utf-8") as f:
            cfg = yaml.safe_load(f) or {}
        base = cfg.pop(BASE_KEY, None)
        if base is None:
            return cfg
        bases: List[str] = base if isinstance(base, list) else [base]
        merged: Dict[str, Any] = {}
        for b in bases:
            merged = _merge_dicts(cls.load_yaml_with_base(resolve_base_path(b, filename)), merged)
        return _merge_dicts(cfg, merged)

    def merge_from_list(self, cfg_list: list) -> None:
        # yacs reports an unknown override key with a bare AssertionError; make it the same KeyError
        # that an unknown key in a YAML file gives.
        try:
            super().merge_from_list(cfg_list)
        except AssertionError as e:
            raise ConfigKeyError(f"{e} (from command-line overrides; check the spelling)") from None


def add_alpseg_config(cfg: _D2CfgNode) -> None:
    """Declare every alpseg key, with the paper's defaults (Desai et al. 2022 unless noted)."""
    C = type(cfg)  # new groups must share the root node class, or yacs rejects merges

    # ---------------- open-vocabulary classification (shared by FCOS-MO and Mask R-CNN*) ----------
    cfg.MODEL.OPEN_VOCAB = C()
    cfg.MODEL.OPEN_VOCAB.TEXT_ENCODER = "ViT-B-32"  # open_clip model name of the phrase encoder
    cfg.MODEL.OPEN_VOCAB.PRETRAINED = "openai"  # open_clip tag, a local checkpoint path, or "none" (random)
    cfg.MODEL.OPEN_VOCAB.PROMPTS = "vild"  # "vild" (63 templates) or "single" ("a photo of {article} {}.")
    cfg.MODEL.OPEN_VOCAB.EMBED_DIM = 512  # text embedding dimension the 1x1 projection maps to
    cfg.MODEL.OPEN_VOCAB.TEMPERATURE = 0.01  # tau in cosine / tau logits
    cfg.MODEL.OPEN_VOCAB.BG_ALPHA = 0.1  # weight of background log-probabilities in the contrastive loss (FCOS-MO and Mask R-CNN*)
    cfg.MODEL.OPEN_VOCAB.EMBEDDINGS = ""  # phrase bank (.npz) holding every training phrase
    cfg.MODEL.OPEN_VOCAB.TEST_VOCABULARY = ""  # dataset name, vocabulary file, or comma list ("" = test set's classes)
    cfg.MODEL.OPEN_VOCAB.NEGATIVES = "global"  # batch vocabulary over all processes ("global", the paper's) or this process's images ("local")
    cfg.MODEL.OPEN_VOCAB.ENCODE_MISSING = False  # encode test phrases absent from the bank on the fly

    # ---------------- FCOS-MO (section 3 of the paper) ----------------
    cfg.MODEL.FCOS_MO = C()
    cfg.MODEL.FCOS_MO.IN_FEATURES = ["p3", "p4", "p5", "p6", "p7"]  # FPN levels the head runs on
    cfg.MODEL.FCOS_MO.NUM_CONVS = 4  # convs per classification / regression tower
    cfg.MODEL.FCOS_MO.NORM = "SyncBN"  # norm of head convs ("" for none, "GN", "BN", "SyncBN")
    cfg.MODEL.FCOS_MO.PER_LEVEL_NORM = True  # separate norm statistics per FPN level in the towers
    cfg.MODEL.FCOS_MO.CENTER_SAMPLING_RADIUS = 1.5  # center sampling radius, in strides
    cfg.MODEL.FCOS_MO.SIZE_RANGES = [64, 128, 256, 512]  # object-size boundaries between levels (pixels)
    cfg.MODEL.FCOS_MO.CENTERNESS = True  # predict centerness (False = the Table 5 ablation)
    cfg.MODEL.FCOS_MO.SCORE_THRESH_TEST = 0.05  # minimum sqrt(prob * centerness) kept at test time
    cfg.MODEL.FCOS_MO.TOPK_CANDIDATES_TEST = 1000  # candidates per level before NMS
    cfg.MODEL.FCOS_MO.NMS_THRESH_TEST = 0.2  # class-specific NMS IoU threshold
    cfg.MODEL.FCOS_MO.DETECTIONS_PER_IMAGE = 100  # detections kept per image
    cfg.MODEL.FCOS_MO.PRIOR_PROB = 0.01  # initial foreground probability of FCOSMask's sigmoid classes and of LEARNABLE_FG_BIAS
    cfg.MODEL.FCOS_MO.LEARNABLE_FG_BIAS = False  # not in the paper: a learnable scalar on FCOSMO's foreground logits
    cfg.MODEL.FCOS_MO.ALP_NORMALIZERS = True  # separate loss-normalizer EMAs for batches holding ALPs (docs/fcos_mo.md)
    cfg.MODEL.FCOS_MO.NUM_CLASSES = 80  # FCOSMask (closed vocabulary, Table 2) only: sigmoid classes
    cfg.MODEL.FCOS_MO.FOCAL_LOSS_ALPHA = 0.25  # FCOSMask only: alpha of the sigmoid focal loss
    cfg.MODEL.FCOS_MO.FOCAL_LOSS_GAMMA = 2.0  # FCOSMask only: gamma of the sigmoid focal loss
    cfg.MODEL.FCOS_MO.BOX_REG_LOSS_WEIGHT = 1.0  # weight of the GIoU loss
    cfg.MODEL.FCOS_MO.CENTERNESS_LOSS_WEIGHT = 1.0  # weight of the centerness BCE
    cfg.MODEL.FCOS_MO.CLS_LOSS_WEIGHT = 1.0  # weight of the region-phrase contrastive loss
    cfg.MODEL.FCOS_MO.MASK_LOSS_WEIGHT = 1.0  # weight of the mask BCE
    cfg.MODEL.FCOS_MO.MASK_IN_FEATURES = ["p3", "p4", "p5"]  # FPN levels the mask head's RoIAlign reads
    # (the mask head is switched by detectron2's MODEL.MASK_ON; False = FCOS of Table 2, first row)

    # ---------------- Mask R-CNN* (section 4, "Baseline") ----------------
    cfg.MODEL.MASK_RCNN_STAR = C()
    cfg.MODEL.MASK_RCNN_STAR.IMAGE_LABEL_LOSS_WEIGHT = 0.1  # weight of the Detic-style image-label loss
    # include the background logit in that loss's softmax (target 0 there); the paper scores "all phrase
    # embeddings in the batch", so the default leaves it out, as Detic does (docs/mask_rcnn_star.md)
    cfg.MODEL.MASK_RCNN_STAR.IMAGE_LABEL_BACKGROUND = False
    cfg.MODEL.MASK_RCNN_STAR.ALP_SUPERVISION = "boxes"  # how ALPs train: "boxes", "image_labels" or "none"
    cfg.MODEL.MASK_RCNN_STAR.SCORE_CALIBRATION = True  # score = sqrt(class prob * RPN objectness prob)
    # The background weight is MODEL.OPEN_VOCAB.BG_ALPHA for both models (Base-MaskRCNNStar.yaml sets it).
    cfg.register_renamed_key(
        "MODEL.MASK_RCNN_STAR.BG_ALPHA", "MODEL.OPEN_VOCAB.BG_ALPHA",
        message="Mask R-CNN* and FCOS-MO share one background weight, MODEL.OPEN_VOCAB.BG_ALPHA",
    )

    # ---------------- mask head ----------------
    cfg.MODEL.ROI_MASK_HEAD.HOURGLASS_DEPTH = 20  # convs on the hourglass main path (20 = Hourglass-20)
    cfg.MODEL.ROI_MASK_HEAD.HOURGLASS_WIDTH = 128  # channels inside the hourglass (HourglassMaskHead's default too; docs/fcos_mo.md)
    cfg.MODEL.ROI_MASK_HEAD.TRAIN_ON_GT_BOXES = True  # mask head on GT boxes; must be True (Mask R-CNN* raises on False)

    # ---------------- input ----------------
    cfg.INPUT.ALP = C()
    cfg.INPUT.ALP.BOX_QUANTIZATION = [0, 8, 16, 32]  # Q values sampled per ALP box; 0 = unchanged
    cfg.INPUT.LSJ = C()
    cfg.INPUT.LSJ.ENABLED = False  # large-scale jitter instead of ResizeShortestEdge
    cfg.INPUT.LSJ.MIN_SCALE = 0.5  # smallest rescale factor of LSJ
    cfg.INPUT.LSJ.MAX_SCALE = 2.0  # largest rescale factor of LSJ
    cfg.INPUT.LSJ.IMAGE_SIZE = 1024  # side of the square crop / pad after LSJ

    # ---------------- data loading ----------------
    cfg.DATALOADER.ALTERNATE_DATASETS = False  # each batch from one of DATASETS.TRAIN, datasets taking turns
    cfg.DATALOADER.ALTERNATE_RATIO = []  # batches per turn for each train dataset (empty = 1 each)

    # ---------------- evaluation / misc ----------------
    cfg.TEST.OID_GROUP_OF_WEIGHT = 1.0  # group-of weight of the Open Images challenge metric
    cfg.TEST.WRITE_CHALLENGE_CSV = False  # also write OID challenge predictions CSV on evaluation
    # OID: also report the metric with predictions copied to their ancestor classes (beside the
    # official number, which expands only the ground truth)
    cfg.TEST.OID_EXPAND_PREDICTIONS = False
    cfg.ALPSEG = C()
    cfg.ALPSEG.LOAD_MIN_BACKBONE_FRACTION = 0.9  # MODEL.WEIGHTS must match at least this share of the backbone's tensors
    cfg.ALPSEG.LOAD_ALLOW_PARTIAL = False  # accept weights that match partly or differ in shape (on purpose only)
    cfg.ALPSEG.SEED_WORKERS = True  # seed each image's augmentation from (SEED, iteration, batch position): reproducible, per-rank, exactly resumable


def get_cfg() -> AlpsegCfgNode:
    """detectron2's defaults plus every alpseg key."""
    cfg = AlpsegCfgNode(_d2_get_cfg())
    add_alpseg_config(cfg)
    return cfg


def load_config(path: str, opts: Optional[List[str]] = None, freeze: bool = False) -> AlpsegCfgNode:
    """Load a YAML (resolving ``_BASE_`` chains) and apply ``KEY VALUE`` overrides."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path!r} does not exist")
    cfg = get_cfg()
    try:
        cfg.merge_from_file(path)
    except KeyError as e:
        key = str(e.args[0] if e.args else e).replace("Non-existent config key: ", "")
        raise ConfigKeyError(f"{path}: unknown config key {key} (in this file or one of its _BASE_ files); "
                             "check the spelling against alpseg/config.py and detectron2's defaults") from None
    if opts:
        cfg.merge_from_list(list(opts))
    if freeze:
        cfg.freeze()
    return cfg
