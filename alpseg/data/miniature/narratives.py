"""Localized-Narratives-style records for a miniature scene.

A narrator names the objects one after another, pausing after each; each word is an utterance with
start/end times. The mouse circles each object while its phrase is spoken, arriving ``DWELL`` seconds
before and leaving ``DWELL`` after (longer than the paper's 0.5 s temporal padding, so a curated box
holds the loop around its object, not the move to the next one), and moves in straight lines
between objects. The trace may leave the image (LocNar records a
band around it) and may be split into several segments (mouse lifted).
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

import numpy as np

from .world import Scene

__all__ = ["make_narrative", "OPENERS", "CLOSERS", "ADJECTIVES"]

OPENERS = ["In this image I can see", "In this picture we can see", "Here we can see", "This is a picture of"]
CLOSERS = ["", "In the background there is grass.", "At the bottom there is a wooden table.",
           "Behind them there is a wall.", "The sky is visible."]
ADJECTIVES = ["small", "big", "little", "large"]
SAMPLE_DT = 0.04  # seconds between trace points (25 Hz)
DWELL = 0.6  # seconds the mouse circles an object before and after its phrase
PAUSE = (1.0, 1.4)  # pause after an object phrase; > 2 * DWELL so that dwell windows never overlap


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def make_narrative(
    scene: Scene,
    rng: np.random.Generator,
    dataset_id: str,
    image_id: str,
    annotator_id: int,
    adjective_prob: float = 0.25,
) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """Return (LocNar record, per-object phrase truth [{phrase, object_index, span}])."""
    words: List[Tuple[str, int]] = []  # (word, object index or -1)
    opener = OPENERS[int(rng.integers(len(OPENERS)))].split()
    words += [(w, -1) for w in opener]
    order = list(rng.permutation(len(scene.objects)))
    for k, oi in enumerate(order):
        name = scene.objects[oi].cls.name
        phrase = [name]
        if rng.random() < adjective_prob:
            phrase.insert(0, ADJECTIVES[int(rng.integers(len(ADJECTIVES)))])
        words.append((_article(phrase[0]), -1))
        words += [(w, oi) for w in phrase]
        if k < len(order) - 2:
            words[-1] = (words[-1][0] + ",", oi)
        elif k == len(order) - 2:
            words.append(("and", -1))
    words[-1] = (words[-1][0] + ".", words[-1][1])
    closer = CLOSERS[int(rng.integers(len(CLOSERS)))].split()
    words += [(w, -1) for w in closer]

    # Word timings: one utterance per word, except that the opener's first two words share one.
    timed: List[Dict[str, Any]] = []
    spans: Dict[int, List[float]] = {}
    t = float(rng.uniform(0.3, 0.8))
    i = 0
    while i < len(words):
        n_words = 2 if i == 0 else 1
        chunk = words[i:i + n_words]
        dur = sum(float(rng.uniform(0.25, 0.45)) for _ in chunk)
        timed.append({"utterance": " ".join(w for w, _ in chunk), "start_time": round(t, 3),
                      "end_time": round(t + dur, 3)})
        for _, oi in chunk:
            if oi >= 0:
                s = spans.setdefault(oi, [t, t + dur])
                s[0], s[1] = min(s[0], t), max(s[1], t + dur)
        t += dur + float(rng.uniform(0.0, 0.12))
        if chunk[-1][0].endswith("."):
            t += 0.5
        if chunk[-1][1] >= 0:  # the narrator pauses after naming an object
            t += float(rng.uniform(*PAUSE))
        i += n_words
    end_time = t + 0.5

    # Mouse trace: loops over each object during its span (+-DWELL), straight moves in between.
    w, h = scene.width, scene.height
    times = np.arange(0.0, end_time, SAMPLE_DT)
    xs = np.empty_like(times)
    ys = np.empty_like(times)
    keyframes: List[Tuple[float, float, float]] = [(0.0, float(rng.uniform(-0.05, 1.05)) * w,
                                                     float(rng.uniform(0.3, 0.7)) * h)]
    windows = []
    for oi in order:
        s0, s1 = spans[oi]
        x0, y0, x1, y1 = scene.objects[oi].box
        windows.append((s0 - DWELL, s1 + DWELL, (x0 + x1) / 2, (y0 + y1) / 2,
                        (x1 - x0) / 2 * float(rng.uniform(0.8, 1.1)),
                        (y1 - y0) / 2 * float(rng.uniform(0.8, 1.1)), float(rng.uniform(0, 6.28))))
    for k, tk in enumerate(times):
        inside = [wd for wd in windows if wd[0] <= tk <= wd[1]]
        if inside:
            a0, a1, cx, cy, rx, ry, ph = inside[0]
            ang = ph + 2 * np.pi * (tk - a0) / 0.6
            xs[k], ys[k] = cx + rx * np.cos(ang), cy + ry * np.sin(ang)
            continue
        prev = [(wd[1], wd) for wd in windows if wd[1] < tk]
        nxt = [(wd[0], wd) for wd in windows if wd[0] > tk]
        def at(wd, tt):
            a0, _, cx, cy, rx, ry, ph = wd
            ang = ph + 2 * np.pi * (tt - a0) / 0.6
            return cx + rx * np.cos(ang), cy + ry * np.sin(ang)
        p_t, p_xy = (keyframes[0][0], keyframes[0][1:]) if not prev else (prev[-1][0], at(prev[-1][1], prev[-1][0]))
        if nxt:
            n_t, n_xy = nxt[0][0], at(nxt[0][1], nxt[0][0])
        else:  # after the last object: drift towards the bottom of the image
            n_t, n_xy = end_time, (w * 0.5, h * 0.95)
        a = (tk - p_t) / max(n_t - p_t, 1e-6)
        xs[k] = p_xy[0] + a * (n_xy[0] - p_xy[0])
        ys[k] = p_xy[1] + a * (n_xy[1] - p_xy[1])
    xs += rng.normal(0, 0.6, xs.shape)
    ys += rng.normal(0, 0.6, ys.shape)
    points = [{"x": round(float(x) / w, 4), "y": round(float(y) / h, 4), "t": round(float(tk), 3)}
              for x, y, tk in zip(xs, ys, times)]
    # Lift the mouse once, between two objects, when there are several.
    segments = [points]
    if len(windows) > 1:
        cut_t = (windows[0][1] + windows[1][0]) / 2
        cut = int(np.searchsorted(times, cut_t))
        gap = 3
        segments = [points[:cut], points[cut + gap:]]
    record = {
        "dataset_id": dataset_id,
        "image_id": image_id,
        "annotator_id": int(annotator_id),
        "caption": " ".join(wd for wd, _ in words),
        "timed_caption": timed,
        "traces": segments,
        "voice_recording": f"{dataset_id}/{dataset_id}_{image_id}_{annotator_id}.ogg",
    }
    truth = [{"object_index": int(oi), "span": spans[oi],
              "phrase": " ".join(wd.strip(",.") for wd, o in words if o == oi)} for oi in order]
    return record, truth
