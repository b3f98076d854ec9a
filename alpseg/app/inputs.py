"""What the app opens: a model, ALPs with their images and narratives, results files, example images.

:meth:`AppInputs.from_demo_dir` reads the folder ``tools/run_demo.py`` writes (``make demo``:
``output/demo``); explicit paths override any of its parts.
"""
from __future__ import annotations

import dataclasses
import glob
import os
from typing import Dict, List, Optional, Tuple

__all__ = ["AppInputs", "DEMO_MODEL", "VOCABULARY_DATASETS", "find_models"]

DEMO_MODEL = "fcos_mo_alp"  # the demo's ALP-supervised FCOS-MO, the model the Segment tab opens
# registered test sets offered as vocabularies (their thing_classes)
VOCABULARY_DATASETS = ["oid_v6_seg_val", "oid_v6_seg_test", "coco_2017_val_vocmasks", "coco_2017_val_zsd"]


def find_models(folder: str) -> Dict[str, Tuple[str, str]]:
    """Trained runs directly under ``folder``: ``{run name: (config.yaml, model_final.pth)}``, by name."""
    runs = {}
    for config in sorted(glob.glob(os.path.join(folder, "*", "config.yaml"))):
        weights = os.path.join(os.path.dirname(config), "model_final.pth")
        if os.path.isfile(weights):
            runs[os.path.basename(os.path.dirname(config))] = (config, weights)
    return runs


@dataclasses.dataclass
class AppInputs:
    config_file: str = ""  # the model's config (a run's OUTPUT_DIR/config.yaml)
    weights: str = ""  # its checkpoint (.pth), or an exported .onnx model when alpseg.export exists
    vocabulary: str = ""  # default vocabulary: comma list, phrase file or registered dataset name
    alps: str = ""  # ALPS.json
    image_root: str = ""  # folder of the ALPs' images
    narratives: List[str] = dataclasses.field(default_factory=list)  # LocNar JSONL the ALPs came from
    results: List[str] = dataclasses.field(default_factory=list)  # results.json / evaluator outputs
    examples: List[str] = dataclasses.field(default_factory=list)  # images offered in the Segment tab
    # other models to switch to: name -> (config, weights), e.g. the demo's three runs
    models: Dict[str, Tuple[str, str]] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_demo_dir(cls, demo_dir: str, num_examples: int = 4) -> "AppInputs":
        """The demo's model, ALPs (LocNar-OID), results files and some OID validation images."""
        if not os.path.isdir(demo_dir):
            raise FileNotFoundError(f"{demo_dir}: no such demo folder; run `make demo` (or tools/run_demo.py "
                                    f"--output {demo_dir}) first")
        data = os.path.join(demo_dir, "datasets")
        model = os.path.join(demo_dir, DEMO_MODEL)
        results = [os.path.join(demo_dir, "results.json")]
        results += sorted(glob.glob(os.path.join(demo_dir, "*", "results.json")))
        from alpseg.data.miniature import CLASSES

        return cls(
            config_file=os.path.join(model, "config.yaml"),
            weights=os.path.join(model, "model_final.pth"),
            vocabulary=", ".join(c.name for c in CLASSES),
            alps=os.path.join(data, "alps", "locnar_oid_train_alps.json"),
            image_root=os.path.join(data, "openimages", "train"),
            narratives=[os.path.join(data, "localized_narratives", "open_images_train_v6_localized_narratives.jsonl")],
            results=[p for p in results if os.path.isfile(p)],
            examples=sorted(glob.glob(os.path.join(data, "openimages", "validation", "*.jpg")))[:num_examples],
            models=find_models(demo_dir),
        )

    def missing(self) -> List[str]:
        """Given paths that do not exist (one line each: what it is and the path)."""
        named = [("config", self.config_file), ("weights", self.weights), ("ALPS.json", self.alps),
                 ("image root", self.image_root)]
        named += [("narratives", p) for p in self.narratives] + [("results", p) for p in self.results]
        return [f"{what}: {path}" for what, path in named if path and not os.path.exists(path)]

    def override(self, **kwargs: Optional[object]) -> "AppInputs":
        """A copy with the given fields replaced (``None`` and empty values keep the current one)."""
        return dataclasses.replace(self, **{k: v for k, v in kwargs.items() if v})
