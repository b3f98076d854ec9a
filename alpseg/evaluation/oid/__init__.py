"""The Open Images challenge instance-segmentation metric, one concept per module.

* ``challenge``: the metric (:func:`evaluate_oid_challenge`, TF decision by decision, on RLE);
* ``hierarchy``: the class hierarchy and ground-truth expansion;
* ``masks``: challenge mask text ``base64(zlib(RLE counts))`` <-> COCO RLE, RLE IoU and extents;
* ``io``: the challenge CSV files (ground truth, predictions, class lists) read and written;
* ``convert``: the OID v6 PNG-mask release -> challenge CSVs;
* ``evaluator``: the detectron2 ``DatasetEvaluator`` over the metric (imported on first use: it pulls
  in detectron2's evaluation stack, which the command-line metric does not need).

The old flat modules ``alpseg.evaluation.oid_{challenge,hierarchy,masks,io,convert,evaluator}``
resolve to these for one release.
"""
from .challenge import evaluate_oid_challenge, evaluate_oid_challenge_files, prepare_ground_truth
from .hierarchy import ClassHierarchy, expand_ground_truth, load_hierarchy
from .io import ChallengeGroundTruth, ChallengePredictionsCSV, ImagePredictions
from .masks import decode_challenge_mask, encode_challenge_mask

__all__ = [
    "ChallengeGroundTruth",
    "ChallengePredictionsCSV",
    "ClassHierarchy",
    "ImagePredictions",
    "OIDChallengeEvaluator",
    "decode_challenge_mask",
    "encode_challenge_mask",
    "evaluate_oid_challenge",
    "evaluate_oid_challenge_files",
    "expand_ground_truth",
    "load_hierarchy",
    "prepare_ground_truth",
]


def __getattr__(name: str):
    if name == "OIDChallengeEvaluator":
        from .evaluator import OIDChallengeEvaluator

        return OIDChallengeEvaluator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
