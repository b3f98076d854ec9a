"""The modeling layout (meta_arch / roi_heads / proposal_generator / backbone) and its old paths."""
import importlib

import pytest
from detectron2.modeling import BACKBONE_REGISTRY, META_ARCH_REGISTRY, PROPOSAL_GENERATOR_REGISTRY, ROI_HEADS_REGISTRY
from detectron2.modeling.roi_heads.mask_head import ROI_MASK_HEAD_REGISTRY

import alpseg  # noqa: F401  (registration)

REGISTERED = [
    (META_ARCH_REGISTRY, "FCOSMO", "alpseg.modeling.meta_arch.fcos_mo"),
    (META_ARCH_REGISTRY, "FCOSMask", "alpseg.modeling.meta_arch.fcos_mask"),
    (META_ARCH_REGISTRY, "MaskRCNNStar", "alpseg.modeling.meta_arch.mask_rcnn_star"),
    (ROI_HEADS_REGISTRY, "MaskRCNNStarROIHeads", "alpseg.modeling.roi_heads.mask_rcnn_star_roi_heads"),
    (ROI_MASK_HEAD_REGISTRY, "HourglassMaskHead", "alpseg.modeling.roi_heads.hourglass"),
    (PROPOSAL_GENERATOR_REGISTRY, "SelectiveRPN", "alpseg.modeling.proposal_generator.selective_rpn"),
    (BACKBONE_REGISTRY, "build_fcos_resnet_fpn_backbone", "alpseg.modeling.backbone.fcos_resnet_fpn"),
]

# old module path -> names it must still export (one release), with the module that now defines each
OLD_PATHS = {
    "alpseg.modeling.mask_rcnn_star": {
        "ALP_SUPERVISION_MODES": "meta_arch.mask_rcnn_star", "MaskRCNNStar": "meta_arch.mask_rcnn_star",
        "MaskRCNNStarROIHeads": "roi_heads.mask_rcnn_star_roi_heads",
        "image_label_loss": "roi_heads.mask_rcnn_star_roi_heads",
        "largest_box_index": "roi_heads.mask_rcnn_star_roi_heads",
        "OpenVocabFastRCNNOutputLayers": "roi_heads.open_vocab_fast_rcnn",
        "calibrated_scores": "roi_heads.open_vocab_fast_rcnn",
        "SelectiveRPN": "proposal_generator.selective_rpn",
    },
    "alpseg.modeling.fcos_mo": {"FCOSMO": "meta_arch.fcos_mo", "FCOSMOHead": "meta_arch.fcos_mo",
                                "build_fcos_resnet_fpn_backbone": "backbone.fcos_resnet_fpn"},
    "alpseg.modeling.fcos_mask": {"FCOSMask": "meta_arch.fcos_mask", "dense_detector_kwargs": "meta_arch.fcos_mask",
                                  "dense_head_norm": "meta_arch.fcos_mask"},
    "alpseg.modeling.hourglass": {"HourglassMaskHead": "roi_heads.hourglass", "ResidualBlock": "roi_heads.hourglass",
                                  "hourglass_stage_blocks": "roi_heads.hourglass",
                                  "select_mask_instances": "roi_heads.hourglass"},
}


@pytest.mark.parametrize("registry,name,module", REGISTERED, ids=[r[1] for r in REGISTERED])
def test_each_registered_name_is_defined_in_its_own_module(registry, name, module):
    assert registry.get(name).__module__ == module


@pytest.mark.parametrize("old", sorted(OLD_PATHS))
def test_old_module_paths_re_export_the_same_objects(old):
    module = importlib.import_module(old)
    assert sorted(module.__all__) == sorted(OLD_PATHS[old])
    for name, new in OLD_PATHS[old].items():
        assert getattr(module, name) is getattr(importlib.import_module("alpseg.modeling." + new), name), name
