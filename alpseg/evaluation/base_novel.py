"""COCO-style evaluation split into base and novel classes (the paper's COCO experiments).

``COCOBaseNovelEvaluator`` is detectron2's ``COCOEvaluator`` (pycocotools' COCOeval underneath,
unchanged) plus, for each task (``bbox``, ``segm``): the AP at IoU 0.5 of every category, and its
mean over the dataset's ``base_classes`` and over its ``novel_classes`` (``AP50-base`` /
``AP50-novel``), as OVR-CNN / Detic report them for the generalized setting: all classes are
predicted and evaluated together; only the averaging is split. A category's AP50 is the mean of
COCOeval's interpolated precision over the 101 recall points at IoU 0.5, all areas, 100 detections;
categories without ground truth are left out of the means.
"""
from __future__ import annotations

import copy
import logging
import os
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
from detectron2.evaluation import COCOEvaluator

from .reporting import atomic_write, markdown_table, plot_per_category_ap, write_json

__all__ = ["COCOBaseNovelEvaluator", "per_category_ap50"]

logger = logging.getLogger(__name__)


def per_category_ap50(coco_eval, id_to_name: Mapping[int, str]) -> Dict[str, float]:
    """AP50 (percent) per category of a finished COCOeval, by name; NaN for categories without GT.

    ``id_to_name`` maps the dataset's category ids to class names; COCOeval's category axis follows
    ``params.catIds``.
    """
    precision = coco_eval.eval["precision"]  # (iou, recall, class, area, max dets)
    cat_ids = list(coco_eval.params.catIds)
    if precision.shape[2] != len(cat_ids):
        raise ValueError(f"COCOeval has {precision.shape[2]} categories but {len(cat_ids)} category ids")
    iou_index = int(np.flatnonzero(np.isclose(coco_eval.params.iouThrs, 0.5))[0])
    out = {}
    for k, cat in enumerate(cat_ids):
        p = precision[iou_index, :, k, 0, -1]
        p = p[p > -1]
        out[id_to_name.get(cat, str(cat))] = float(np.mean(p) * 100) if p.size else float("nan")
    return out


def _nanmean(values: List[float]) -> float:
    vals = [v for v in values if not np.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


class COCOBaseNovelEvaluator(COCOEvaluator):
    """COCOEvaluator + AP50 on the base and on the novel classes of the dataset's metadata."""

    def __init__(self, dataset_name: str, tasks: Optional[Sequence[str]] = None, distributed: bool = True,
                 output_dir: Optional[str] = None, *, base_classes: Optional[Sequence[str]] = None,
                 novel_classes: Optional[Sequence[str]] = None, plot: bool = True, **kwargs):
        """``base_classes`` / ``novel_classes`` default to the metadata's lists (names of thing_classes)."""
        super().__init__(dataset_name, tasks=tasks, distributed=distributed, output_dir=output_dir, **kwargs)
        names = list(self._metadata.get("thing_classes", []))
        base = list(base_classes if base_classes is not None else self._metadata.get("base_classes", []) or [])
        novel = novel_classes if novel_classes is not None else self._metadata.get("novel_classes", None)
        novel = list(novel) if novel is not None else [n for n in names if n not in set(base)]
        unknown = [n for n in base + novel if n not in set(names)]
        if unknown:
            raise ValueError(f"{dataset_name}: base/novel classes not in thing_classes: {unknown[:10]}")
        if not base:
            logger.warning("%s has no base_classes in its metadata: AP50-base will be NaN", dataset_name)
        self._base, self._novel = base, novel
        self._name = dataset_name
        self._plot = plot
        self.per_category_ap50: Dict[str, Dict[str, float]] = {}
        id_map = self._metadata.get("thing_dataset_id_to_contiguous_id", None)
        if id_map:
            self._id_to_name = {int(i): names[c] for i, c in id_map.items()}
            self._restrict_gt_to_thing_classes(set(self._id_to_name))
        else:
            self._id_to_name = {c["id"]: c["name"] for c in self._coco_api.loadCats(self._coco_api.getCatIds())}

    def _restrict_gt_to_thing_classes(self, cat_ids) -> None:
        """Drop GT categories the dataset does not evaluate (e.g. the 15 classes ZSD leaves out of
        its 65), so that COCOeval's category axis is exactly the dataset's classes."""
        from pycocotools.coco import COCO

        extra = set(self._coco_api.getCatIds()) - cat_ids
        if not extra:
            return
        ds = self._coco_api.dataset
        sub = COCO()
        sub.dataset = dict(ds, categories=[c for c in ds["categories"] if c["id"] in cat_ids],
                           annotations=[a for a in ds["annotations"] if a["category_id"] in cat_ids])
        sub.createIndex()
        self._coco_api = sub
        logger.info("%s: evaluating %d categories; ground truth of %d other categories ignored", self._name,
                    len(cat_ids), len(extra))

    def _derive_coco_results(self, coco_eval, iou_type, class_names=None):
        results = super()._derive_coco_results(coco_eval, iou_type, class_names=class_names)
        if iou_type not in ("bbox", "segm"):
            return results
        if not class_names:
            results["AP50-base"] = results["AP50-novel"] = float("nan")
            return results
        if coco_eval is None:
            # No detection at all (e.g. an untrained model): every class with ground truth scores 0,
            # which is what COCOeval gives an empty submission; detectron2 itself reports NaN here.
            per_class = self._empty_submission_ap50()
        else:
            per_class = per_category_ap50(coco_eval, self._id_to_name)
        self.per_category_ap50[iou_type] = per_class
        results["AP50-base"] = _nanmean([per_class[n] for n in self._base])
        results["AP50-novel"] = _nanmean([per_class[n] for n in self._novel])
        for name, ap in per_class.items():
            results[f"AP50-{name}"] = ap
        logger.info("%s %s: AP50-base %.2f (%d classes), AP50-novel %.2f (%d classes)", self._name, iou_type,
                    results["AP50-base"], len(self._base), results["AP50-novel"], len(self._novel))
        return results

    def _empty_submission_ap50(self) -> Dict[str, float]:
        with_gt = {self._id_to_name[a["category_id"]] for a in self._coco_api.dataset["annotations"]
                   if a["category_id"] in self._id_to_name and not a.get("iscrowd", 0)}
        return {name: (0.0 if name in with_gt else float("nan")) for name in self._id_to_name.values()}

    def evaluate(self, img_ids=None):
        results = super().evaluate(img_ids)
        if results and self._output_dir and self.per_category_ap50:
            self._write_report(results)
        return copy.deepcopy(results)

    def _write_report(self, results: Dict[str, Dict[str, float]]) -> None:
        base = set(self._base)
        summary = []
        for task in ("segm", "bbox"):
            if task in results:
                r = results[task]
                summary.append([task, f"{r.get('AP', float('nan')):.1f}", f"{r.get('AP50', float('nan')):.1f}",
                                f"{r['AP50-base']:.1f}", f"{r['AP50-novel']:.1f}"])
        text = ["## COCO base / novel\n", markdown_table(["task", "AP", "AP50", "AP50-base", "AP50-novel"], summary)]
        for task, per_class in self.per_category_ap50.items():
            rows = [[n, "base" if n in base else "novel", "-" if np.isnan(v) else f"{v:.1f}"]
                    for n, v in sorted(per_class.items(), key=lambda kv: (-np.nan_to_num(kv[1], nan=-1), kv[0]))]
            text += [f"\n### {task} AP50 per class\n", markdown_table(["class", "split", "AP50"], rows)]
            if self._plot:
                plot_per_category_ap({n: v / 100 for n, v in per_class.items()},
                                     os.path.join(self._output_dir, f"coco_base_novel_{task}_per_category_ap.png"),
                                     base_classes=base, title=f"{task} AP50 per category")
        atomic_write(os.path.join(self._output_dir, "coco_base_novel_results.md"), "".join(text))
        write_json(os.path.join(self._output_dir, "coco_base_novel_results.json"),
                   {"results": results, "per_category_ap50": self.per_category_ap50,
                    "base_classes": self._base, "novel_classes": self._novel})
