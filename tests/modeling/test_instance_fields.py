"""The single default of the per-instance flags, and the models that read them through it."""
import torch
from detectron2.structures import BitMasks, Boxes, Instances

from alpseg.modeling.instance_fields import gt_has_mask, gt_is_alp


def _inst(n, masks=False):
    inst = Instances((8, 8), gt_boxes=Boxes(torch.zeros(n, 4)))
    if masks:
        inst.gt_masks = BitMasks(torch.zeros(n, 8, 8, dtype=torch.bool))
    return inst


def test_defaults_when_the_fields_are_absent():
    assert gt_is_alp(_inst(3)).tolist() == [False] * 3
    assert gt_has_mask(_inst(3)).tolist() == [False] * 3  # no gt_masks: nothing to train a mask head on
    assert gt_has_mask(_inst(2, masks=True)).tolist() == [True, True]  # plain detectron2 data
    assert gt_has_mask(_inst(0)).shape == (0,) and gt_has_mask(_inst(0)).dtype == torch.bool


def test_fields_when_present_win_and_become_bool():
    inst = _inst(3, masks=True)
    inst.gt_has_mask = torch.tensor([1, 0, 1], dtype=torch.uint8)
    inst.gt_is_alp = torch.tensor([0, 1, 0], dtype=torch.uint8)
    assert gt_has_mask(inst).tolist() == [True, False, True] and gt_has_mask(inst).dtype == torch.bool
    assert gt_is_alp(inst, torch.device("cpu")).tolist() == [False, True, False]


def test_every_model_reads_the_flags_through_the_helper():
    """No module of alpseg.modeling reads gt_has_mask / gt_is_alp with its own default any more."""
    import importlib
    import inspect
    import pkgutil

    import alpseg.modeling

    names = [m.name for m in pkgutil.walk_packages(alpseg.modeling.__path__, "alpseg.modeling.")]
    # the modules that read the flags are among those checked (a moved module is not silently skipped)
    assert {"alpseg.modeling.meta_arch.fcos_mask", "alpseg.modeling.meta_arch.fcos_mo",
            "alpseg.modeling.meta_arch.mask_rcnn_star", "alpseg.modeling.roi_heads.hourglass",
            "alpseg.modeling.roi_heads.mask_rcnn_star_roi_heads"} <= set(names)
    for name in names:
        if name == "alpseg.modeling.instance_fields":
            continue
        src = inspect.getsource(importlib.import_module(name))
        assert 'has("gt_has_mask")' not in src and 'has("gt_is_alp")' not in src, name
