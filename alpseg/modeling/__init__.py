"""Models: importing this package registers them with detectron2's registries.

Laid out like detectron2 and Detic, one concept per module:

* ``meta_arch/``: ``META_ARCH_REGISTRY`` entries ``FCOSMO``, ``FCOSMask`` (closed-vocabulary FCOS of
  Table 2) and ``MaskRCNNStar``;
* ``roi_heads/``: ``ROI_HEADS_REGISTRY`` entry ``MaskRCNNStarROIHeads``, its box predictor
  ``OpenVocabFastRCNNOutputLayers``, and the ``ROI_MASK_HEAD_REGISTRY`` entry ``HourglassMaskHead``;
* ``proposal_generator/``: ``PROPOSAL_GENERATOR_REGISTRY`` entry ``SelectiveRPN``;
* ``backbone/``: ``BACKBONE_REGISTRY`` entry ``build_fcos_resnet_fpn_backbone``;
* shared pieces: ``open_vocab`` (classifier, contrastive loss), ``vocabulary`` (batch / test
  vocabularies of a model), ``instance_fields`` (``gt_is_alp`` / ``gt_has_mask``), ``ema``.

The old module paths ``alpseg.modeling.{fcos_mo,fcos_mask,hourglass,mask_rcnn_star}`` re-export
the moved names for one release.
"""
from . import backbone, instance_fields, meta_arch, proposal_generator, roi_heads  # noqa: F401
