"""The miniature world: scenes of simple, distinctly drawn objects with exact masks.

Each class is a (shape, colour) pair so that a tiny detector can learn it in minutes on a CPU. The
classes carry real COCO names and real Open Images MIDs and display names (from the shipped
challenge-2019 segmentable list, ``alpseg/data/resources/openimages/``) because the dataset splits of
the paper (VOC-masks, ZSD, COCO->OID base/novel) are defined by them:

* base classes exist in COCO and are base classes of the COCO -> OID split (they get masks in the
  miniature COCO); ``bottle`` and ``bird`` are also PASCAL VOC classes and ``cake`` is a ZSD novel
  class, so the COCO VOC-masks and ZSD splits are non-trivial on the miniature tree;
* novel classes exist only in Open Images: in training they appear only in narratives (ALPs) and in
  the box-oracle's OID boxes, and at test time with masks.

The real hierarchy applies: ``owl`` is a novel child of the base class ``bird`` (so owls are also Bird
ground truth after hierarchical expansion), ``pumpkin`` sits under Squash and ``tortoise`` under
Turtle < Reptile, ``goldfish`` under Fish and ``sombrero`` under Hat (novel classes without a base
ancestor), ``dolphin`` has no parent.

Everything is a pure function of a seed.
"""
from __future__ import annotations

import dataclasses
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
from pycocotools import mask as mask_utils

__all__ = ["MiniClass", "MiniObject", "Scene", "CLASSES", "BASE_CLASSES", "NOVEL_CLASSES",
           "sample_scene", "render_scene", "object_mask"]


@dataclasses.dataclass(frozen=True)
class MiniClass:
    name: str  # lower-case phrase, as a narrator would say it
    shape: str
    color: Tuple[int, int, int]  # RGB
    coco_id: Optional[int]  # COCO category id, None for classes absent from COCO
    oid_mid: str  # its real Open Images MID (challenge-2019 segmentable list)
    oid_name: str  # its Open Images display name in that list


CLASSES: List[MiniClass] = [
    MiniClass("apple", "disk", (220, 30, 30), 53, "/m/014j1m", "Apple"),
    MiniClass("banana", "ellipse", (235, 215, 40), 52, "/m/09qck", "Banana"),
    MiniClass("clock", "square", (245, 245, 245), 85, "/m/01x3z", "Clock"),
    MiniClass("cake", "triangle", (140, 40, 190), 61, "/m/0fszt", "Cake"),
    MiniClass("bottle", "tall_rect", (30, 150, 60), 44, "/m/04dr76w", "Bottle"),
    MiniClass("bird", "diamond", (40, 40, 40), 16, "/m/015p6", "Bird"),
    MiniClass("dolphin", "wide_ellipse", (40, 90, 230), None, "/m/02hj4", "Dolphin"),
    MiniClass("pumpkin", "star", (250, 130, 20), None, "/m/05zsy", "Pumpkin"),
    MiniClass("owl", "cross", (20, 210, 220), None, "/m/09d5_", "Owl"),
    MiniClass("tortoise", "half_disk", (150, 90, 40), None, "/m/011k07", "Tortoise"),
    # Eight more novel classes (issue #23): with twelve, AP50-novel is not decided by a handful of
    # detections. Each has a shape or a colour of its own among the classes above.
    MiniClass("starfish", "star", (230, 60, 160), None, "/m/01h8tj", "Starfish"),
    MiniClass("lemon", "hexagon", (250, 240, 110), None, "/m/09k_b", "Lemon"),
    MiniClass("strawberry", "down_triangle", (200, 0, 50), None, "/m/07fbm7", "Strawberry"),
    MiniClass("penguin", "tall_ellipse", (20, 20, 80), None, "/m/05z6w", "Penguin"),
    MiniClass("whale", "trapezoid", (60, 120, 150), None, "/m/084zz", "Whale"),
    MiniClass("mushroom", "pentagon", (110, 0, 160), None, "/m/052sf", "Mushroom"),
    MiniClass("sombrero", "chevron", (120, 180, 30), None, "/m/02jfl0", "Sombrero"),
    MiniClass("goldfish", "wide_ellipse", (250, 165, 0), None, "/m/03fj2", "Goldfish"),
]
BASE_CLASSES = [c for c in CLASSES if c.coco_id is not None]
NOVEL_CLASSES = [c for c in CLASSES if c.coco_id is None]


@dataclasses.dataclass
class MiniObject:
    cls: MiniClass
    polygon: np.ndarray  # (K, 2) float, XY pixels, closed implicitly

    @property
    def box(self) -> Tuple[float, float, float, float]:
        x0, y0 = self.polygon.min(axis=0)
        x1, y1 = self.polygon.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)


@dataclasses.dataclass
class Scene:
    width: int
    height: int
    background: Tuple[int, int, int]
    objects: List[MiniObject]
    seed: int


def _shape_polygon(shape: str, cx: float, cy: float, size: float) -> np.ndarray:
    """Polygon of a shape whose bounding box is roughly ``size`` wide, centred at (cx, cy)."""
    r = size / 2.0
    t = np.linspace(0, 2 * math.pi, 32, endpoint=False)
    if shape == "disk":
        pts = np.stack([np.cos(t) * r, np.sin(t) * r], 1)
    elif shape == "ellipse":
        pts = np.stack([np.cos(t) * r, np.sin(t) * r * 0.55], 1)
    elif shape == "wide_ellipse":
        pts = np.stack([np.cos(t) * r, np.sin(t) * r * 0.4], 1)
    elif shape == "half_disk":
        th = np.linspace(math.pi, 2 * math.pi, 17)
        pts = np.stack([np.cos(th) * r, np.sin(th) * r + r * 0.5], 1)
    elif shape == "tall_ellipse":
        pts = np.stack([np.cos(t) * r * 0.5, np.sin(t) * r], 1)
    elif shape in ("hexagon", "pentagon"):
        k = 6 if shape == "hexagon" else 5
        ang = -math.pi / 2 + np.arange(k) * 2 * math.pi / k
        pts = np.stack([np.cos(ang) * r, np.sin(ang) * r], 1)
    elif shape == "down_triangle":
        pts = np.array([[-r, -r * 0.8], [r, -r * 0.8], [0, r]])
    elif shape == "trapezoid":
        pts = np.array([[-0.45 * r, -0.6 * r], [0.45 * r, -0.6 * r], [r, 0.6 * r], [-r, 0.6 * r]])
    elif shape == "chevron":
        pts = np.array([[-r, -0.2 * r], [0, -r], [r, -0.2 * r], [r, 0.5 * r], [0, -0.3 * r], [-r, 0.5 * r]])
    elif shape == "square":
        pts = np.array([[-r, -r], [r, -r], [r, r], [-r, r]]) * 0.85
    elif shape == "tall_rect":
        pts = np.array([[-0.4 * r, -r], [0.4 * r, -r], [0.4 * r, r], [-0.4 * r, r]])
    elif shape == "triangle":
        pts = np.array([[0, -r], [r, r * 0.8], [-r, r * 0.8]])
    elif shape == "diamond":
        pts = np.array([[0, -r], [r * 0.75, 0], [0, r], [-r * 0.75, 0]])
    elif shape == "star":
        ang = -math.pi / 2 + np.arange(10) * math.pi / 5
        rad = np.where(np.arange(10) % 2 == 0, r, r * 0.42)
        pts = np.stack([np.cos(ang) * rad, np.sin(ang) * rad], 1)
    elif shape == "cross":
        a, b = r, r * 0.33
        pts = np.array([[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b], [b, a], [-b, a],
                        [-b, b], [-a, b], [-a, -b], [-b, -b]])
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return pts + np.array([cx, cy])


def sample_scene(
    rng: np.random.Generator,
    classes: Sequence[MiniClass],
    width: int = 128,
    height: int = 128,
    num_objects: Tuple[int, int] = (1, 3),
    size_range: Tuple[float, float] = (22.0, 50.0),
    seed: int = 0,
    first_class: Optional[MiniClass] = None,
) -> Scene:
    """Place 1-3 non-overlapping objects of the given classes on a plain, noisy background.

    ``first_class``, if given, is the class of the first object (the others are drawn at random), so
    that a split can make sure every class occurs in it.
    """
    n = int(rng.integers(num_objects[0], num_objects[1] + 1))
    objects: List[MiniObject] = []
    boxes: List[Tuple[float, float, float, float]] = []
    attempts = 0
    while len(objects) < n and attempts < 200:
        attempts += 1
        cls = first_class if first_class is not None and not objects else classes[int(rng.integers(len(classes)))]
        size = float(rng.uniform(*size_range))
        margin = size / 2 + 2
        cx = float(rng.uniform(margin, width - margin))
        cy = float(rng.uniform(margin, height - margin))
        poly = np.round(_shape_polygon(cls.shape, cx, cy, size), 2)  # as stored in the COCO JSON
        obj = MiniObject(cls, poly)
        x0, y0, x1, y1 = obj.box
        if any(x0 < b[2] + 3 and b[0] < x1 + 3 and y0 < b[3] + 3 and b[1] < y1 + 3 for b in boxes):
            continue
        objects.append(obj)
        boxes.append((x0, y0, x1, y1))
    bg = tuple(int(v) for v in rng.integers(150, 200, size=3))
    return Scene(width, height, bg, objects, seed)  # type: ignore[arg-type]


def object_mask(obj: MiniObject, height: int, width: int) -> np.ndarray:
    """Binary mask (H, W) uint8 of one object.

    Rasterised by pycocotools from the polygon that the COCO JSON stores, so the drawn object, the COCO
    polygon and the challenge RLE are the same pixels.
    """
    rles = mask_utils.frPyObjects([obj.polygon.reshape(-1).tolist()], height, width)
    return mask_utils.decode(mask_utils.merge(rles)).astype(np.uint8)


def render_scene(scene: Scene) -> np.ndarray:
    """RGB uint8 image of a scene: background colour plus mild noise, then the objects."""
    rng = np.random.default_rng(scene.seed + 7919)
    img = np.empty((scene.height, scene.width, 3), np.float32)
    img[:] = scene.background
    img += rng.normal(0, 6, img.shape)
    for obj in scene.objects:
        m = object_mask(obj, scene.height, scene.width).astype(bool)
        img[m] = np.array(obj.cls.color, np.float32) + rng.normal(0, 8, (int(m.sum()), 3))
    return np.clip(img, 0, 255).astype(np.uint8)
