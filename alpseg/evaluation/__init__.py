"""Evaluation: the Open Images challenge mask metric (TF-free), COCO base/novel AP50, reporting.

The two detectron2 ``DatasetEvaluator`` classes are imported on first use (they pull in detectron2's
evaluation stack, which the command-line metric does not need).
"""
from .oid.challenge import evaluate_oid_challenge, evaluate_oid_challenge_files, prepare_ground_truth  # noqa: F401
from .oid.io import ChallengeGroundTruth, ChallengePredictionsCSV, ImagePredictions  # noqa: F401
from .oid.masks import decode_challenge_mask, encode_challenge_mask  # noqa: F401

__all__ = [
    "evaluate_oid_challenge",
    "evaluate_oid_challenge_files",
    "prepare_ground_truth",
    "ChallengeGroundTruth",
    "ChallengePredictionsCSV",
    "ImagePredictions",
    "encode_challenge_mask",
    "decode_challenge_mask",
    "OIDChallengeEvaluator",
    "COCOBaseNovelEvaluator",
]


def __getattr__(name):
    if name == "OIDChallengeEvaluator":
        from .oid.evaluator import OIDChallengeEvaluator

        return OIDChallengeEvaluator
    if name == "COCOBaseNovelEvaluator":
        from .base_novel import COCOBaseNovelEvaluator

        return COCOBaseNovelEvaluator
    raise AttributeError(name)
