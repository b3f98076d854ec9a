"""ResNet checkpoint layouts: detection, conversion to detectron2 names, and load verification.

Pretrained ResNet-50 weights come in many wrappings: a bare torchvision state dict, the same
under ``{"state_dict": ...}`` (MoCo, PyTorch-Lightning) or ``{"model": ...}`` (VirTex, detectron2),
with the backbone under a prefix (``module.``, ``module.encoder_q.``, ``visual.cnn.``,
``backbone.`` ...) next to heads and other networks. A transfer evaluation that silently loads half
a backbone reports numbers for a partly random network, so everything here is explicit: the layout
is detected from anchor keys, every key of the file ends in exactly one bucket of a
:class:`ConversionReport` (converted, dropped head, bookkeeping, outside the backbone prefix, or
unmatched), and a missing or mis-shaped backbone weight is an error that names the keys.

The converted dict uses detectron2's ResNet names without module prefix (``stem.conv1.weight``,
``res2.0.conv1.norm.weight``, ``res3.0.shortcut.weight``); saved as a pkl with
``matching_heuristics: True`` detectron2's checkpointer maps them onto ``backbone.bottom_up.*``
(FPN) or ``backbone.*`` / ``roi_heads.res5.*`` (C4), exactly like its own
``convert-torchvision-to-d2`` output.
"""
from __future__ import annotations

import logging
import os
import pickle
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from alpseg.utils.io import atomic_open

__all__ = [
    "BackboneLoadError",
    "CheckpointLayout",
    "ConversionReport",
    "convert_checkpoint",
    "convert_state_dict",
    "detect_layout",
    "expected_torchvision_shapes",
    "load_checkpoint_file",
    "save_detectron2_pkl",
    "torchvision_to_detectron2_name",
    "unwrap_state_dict",
    "verify_backbone_loaded",
]

logger = logging.getLogger(__name__)

#: Keys under which training frameworks nest the state dict, tried in this order.
WRAPPER_KEYS: Tuple[str, ...] = ("state_dict", "model", "model_state_dict", "model_state", "module")

#: Backbone prefixes in order of preference when a file holds several ResNets (MoCo keeps the
#: query encoder ``encoder_q`` next to the momentum encoder ``encoder_k``; the query one is the
#: one MoCo's own detection transfer uses).
PREFERRED_PREFIXES: Tuple[str, ...] = (
    "",
    "module.",
    "module.encoder_q.",
    "encoder_q.",
    "module.base_encoder.",
    "base_encoder.",
    "visual.cnn.",
    "module.visual.cnn.",
    "backbone.",
    "module.backbone.",
    "backbone.bottom_up.",
    "model.",
    "encoder.",
    "module.encoder.",
)

#: Classification / projection heads that sit next to the trunk under the same prefix; dropped
#: on purpose (reported, never an error).
HEAD_PREFIXES: Tuple[str, ...] = (
    "fc.", "head.", "heads.", "projection.", "projector.", "projection_head.", "proj.", "predictor.",
    "prediction.", "classifier.", "mlp.",
)

#: Bookkeeping buffers that carry no weights (BN step counters).
BOOKKEEPING_SUFFIXES: Tuple[str, ...] = ("num_batches_tracked",)

#: Anchor key of each naming style; its prefix in the file is the backbone prefix.
STYLE_ANCHORS: Dict[str, str] = {
    "torchvision": "layer1.0.conv1.weight",
    "detectron2": "res2.0.conv1.weight",
}


class BackboneLoadError(RuntimeError):
    """A checkpoint does not provide a complete backbone (or cannot be read as one)."""


@dataclass(frozen=True)
class CheckpointLayout:
    """Where the backbone sits in a checkpoint file."""

    wrapper: Tuple[str, ...]  # keys followed from the file's top level to the state dict
    prefix: str  # prefix of backbone keys inside the state dict
    style: str  # "torchvision" (layerN/bnK/downsample) or "detectron2" (resN/convK.norm/shortcut)

    def describe(self) -> str:
        wrap = "".join(f"[{k!r}]" for k in self.wrapper) or "(top level)"
        return f"state dict at {wrap}, prefix {self.prefix!r}, {self.style} names"


@dataclass
class ConversionReport:
    """Where every key of the input went. ``ok`` is False when the backbone is incomplete."""

    source: str
    layout: CheckpointLayout
    arch: str
    converted: List[Tuple[str, str]] = field(default_factory=list)  # (input key, detectron2 key)
    dropped_heads: List[str] = field(default_factory=list)
    dropped_bookkeeping: List[str] = field(default_factory=list)
    outside_prefix: List[str] = field(default_factory=list)
    unmatched: List[str] = field(default_factory=list)  # under the prefix, neither trunk nor head
    missing: List[str] = field(default_factory=list)  # expected trunk keys (input naming) absent
    shape_mismatch: List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]] = field(default_factory=list)
    non_finite: List[Tuple[str, int, int]] = field(default_factory=list)  # (input key, NaN/Inf count, numel)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.shape_mismatch and not self.non_finite

    def to_dict(self) -> Dict[str, Any]:
        return {
            "source": self.source,
            "layout": {"wrapper": list(self.layout.wrapper), "prefix": self.layout.prefix,
                       "style": self.layout.style},
            "arch": self.arch,
            "converted": [list(p) for p in self.converted],
            "dropped_heads": self.dropped_heads,
            "dropped_bookkeeping": self.dropped_bookkeeping,
            "outside_prefix": self.outside_prefix,
            "unmatched": self.unmatched,
            "missing": self.missing,
            "shape_mismatch": [[k, list(a), list(b)] for k, a, b in self.shape_mismatch],
            "non_finite": [list(t) for t in self.non_finite],
            "ok": self.ok,
        }

    def summary(self) -> str:
        """Human-readable account; lists every unmatched, missing and mis-shaped key."""
        lines = [
            f"{self.source}: {self.layout.describe()}, arch {self.arch}",
            f"  converted {len(self.converted)} backbone tensors to detectron2 names",
        ]
        if self.dropped_heads:
            lines.append(f"  dropped {len(self.dropped_heads)} head tensors: "
                         + _group_by_first_component(self.dropped_heads, self.layout.prefix))
        if self.dropped_bookkeeping:
            lines.append(f"  dropped {len(self.dropped_bookkeeping)} BN step counters")
        if self.outside_prefix:
            lines.append(f"  ignored {len(self.outside_prefix)} tensors outside the backbone prefix: "
                         + _group_by_first_component(self.outside_prefix, ""))
        for key in self.unmatched:
            lines.append(f"  UNMATCHED (not a {self.arch} trunk weight, not loaded): {key}")
        for key in self.missing:
            lines.append(f"  MISSING backbone weight: {key}")
        for key, got, want in self.shape_mismatch:
            lines.append(f"  SHAPE MISMATCH {key}: checkpoint {tuple(got)} vs {self.arch} {tuple(want)}")
        for key, bad, n in self.non_finite:
            lines.append(f"  NON-FINITE {key}: {bad} of {n} values are NaN or Inf")
        lines.append("  backbone complete" if self.ok else
                     f"  backbone INCOMPLETE: {len(self.missing)} missing, "
                     f"{len(self.shape_mismatch)} mis-shaped, {len(self.non_finite)} with NaN/Inf")
        return "\n".join(lines)


def _group_by_first_component(keys: Sequence[str], prefix: str) -> str:
    counts: "OrderedDict[str, int]" = OrderedDict()
    for k in keys:
        rest = k[len(prefix):] if prefix and k.startswith(prefix) else k
        head = prefix + rest.split(".", 1)[0]
        counts[head] = counts.get(head, 0) + 1
    return ", ".join(f"{h}.* ({n})" for h, n in counts.items())


# ------------------------------------------------------------------------------------------------
# reading


#: How the checkpoint formats this module reads begin: torch.save's zip format, and pickles
#: (legacy torch.save, detectron2 / Caffe2 pkl files) whose protocol-2+ opcode is 0x80.
_MAGIC = ((b"PK\x03\x04", "zip"), (b"\x80", "pickle"))


def _sniff(path: str) -> str:
    """"zip" or "pickle", or a one-line :class:`BackboneLoadError` for an empty or foreign file."""
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        raise BackboneLoadError(f"{path}: the checkpoint file is empty (0 bytes); download or copy it again")
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    looks = "a text file" if all(32 <= b < 127 or b in b"\t\r\n" for b in head) else "not a checkpoint"
    raise BackboneLoadError(
        f"{path}: {looks} (starts with {head[:12]!r}), not a torch.save / pickle checkpoint; "
        "check the path (an HTML error page saved by a failed download looks like this)")


def load_checkpoint_file(path: str, trust_pickle: bool = False) -> Any:
    """Read a checkpoint from disk without executing code unless ``trust_pickle``.

    ``.pkl`` files are detectron2 / Caffe2 style pickles of numpy arrays; everything else goes
    through ``torch.load(weights_only=True)``, which refuses arbitrary objects. Files written by
    trainers that pickle custom classes need ``trust_pickle=True`` (only for files you trust). An
    empty, truncated or foreign file is a one-line :class:`BackboneLoadError` naming it.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    kind = _sniff(path)
    try:
        if path.endswith(".pkl") and kind == "pickle":
            with open(path, "rb") as f:
                if trust_pickle:
                    return pickle.load(f, encoding="latin1")
                return _SafeUnpickler(f, encoding="latin1").load()
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except BackboneLoadError:
        raise
    except pickle.UnpicklingError as e:
        if "Weights only load failed" in str(e) or "weights_only" in str(e):
            raise BackboneLoadError(
                f"{path}: torch.load(weights_only=True) refused an object in the file "
                f"({_first_line(e)}); if you trust the file, pass --trust-pickle (trust_pickle=True)") from e
        raise _corrupt(path, kind, e) from e
    except (EOFError, RuntimeError, ValueError, OSError) as e:
        raise _corrupt(path, kind, e) from e


def _corrupt(path: str, kind: str, e: BaseException) -> BackboneLoadError:
    return BackboneLoadError(f"{path}: truncated or corrupt {kind} checkpoint ({type(e).__name__}: "
                             f"{_first_line(e) or 'no data'}); download or copy it again")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    line = text[0] if text else ""
    return line if len(line) <= 160 else line[:157] + "..."


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler for detectron2-style pkl files: numpy arrays and builtins only."""

    _ALLOWED = {
        ("collections", "OrderedDict"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED or module == "builtins" and name in {"dict", "list", "tuple"}:
            return super().find_class(module, name)
        raise BackboneLoadError(
            f"pkl checkpoint references {module}.{name}; refusing to unpickle it "
            "(pass trust_pickle=True / --trust-pickle if you trust the file)"
        )


def _is_tensor_like(v: Any) -> bool:
    return isinstance(v, (torch.Tensor, np.ndarray))


def unwrap_state_dict(obj: Any) -> Tuple[Dict[str, torch.Tensor], Tuple[str, ...]]:
    """Follow wrapper keys (``state_dict``, ``model`` ...) down to a dict of tensors.

    Returns the tensors (numpy arrays converted) and the wrapper path taken. Non-tensor entries
    next to tensors (e.g. an ``epoch`` int inside the state dict) are an error: such a dict is not
    a state dict and guessing would hide a layout this code does not know.
    """
    path: List[str] = []
    while isinstance(obj, Mapping):
        tensor_keys = [k for k, v in obj.items() if _is_tensor_like(v)]
        if tensor_keys and len(tensor_keys) >= len(obj) - _count_meta(obj):
            out: Dict[str, torch.Tensor] = OrderedDict()
            for k in tensor_keys:
                v = obj[k]
                out[str(k)] = torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v
            return out, tuple(path)
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), Mapping):
                path.append(key)
                obj = obj[key]
                break
        else:
            raise BackboneLoadError(
                "no state dict found"
                + (f" under {'/'.join(path)}" if path else "")
                + f"; keys here: {sorted(map(str, obj.keys()))[:20]} "
                f"(looked for tensors or one of {list(WRAPPER_KEYS)})"
            )
    raise BackboneLoadError(f"checkpoint is a {type(obj).__name__}, not a dict of tensors")


def _count_meta(obj: Mapping) -> int:
    """Entries tolerated next to tensors in a state dict: detectron2 pkl metadata strings."""
    return sum(1 for k, v in obj.items() if k in {"__author__", "matching_heuristics"} and not _is_tensor_like(v))


# ------------------------------------------------------------------------------------------------
# layout and names


def detect_layout(
    state_dict: Mapping[str, torch.Tensor], wrapper: Tuple[str, ...] = (), prefix: Optional[str] = None
) -> CheckpointLayout:
    """Find the backbone prefix and naming style from anchor keys.

    With several candidate prefixes (two encoders in one file) the first of
    :data:`PREFERRED_PREFIXES` wins; an ambiguity outside that list is an error naming the
    candidates so the user can pass ``prefix`` explicitly.
    """
    candidates: Dict[str, str] = {}
    for key in state_dict:
        for style, anchor in STYLE_ANCHORS.items():
            if key == anchor or key.endswith("." + anchor):
                candidates[key[: len(key) - len(anchor)]] = style
    if prefix is not None:
        if prefix not in candidates:
            raise BackboneLoadError(
                f"prefix {prefix!r} holds no ResNet (no '{prefix}{STYLE_ANCHORS['torchvision']}' "
                f"or '{prefix}{STYLE_ANCHORS['detectron2']}'); candidates found: {sorted(candidates)}"
            )
        return CheckpointLayout(wrapper, prefix, candidates[prefix])
    if not candidates:
        sample = sorted(state_dict)[:10]
        raise BackboneLoadError(
            "no ResNet found: no key ends with "
            + " or ".join(repr(a) for a in STYLE_ANCHORS.values())
            + f"; first keys: {sample}"
        )
    if len(candidates) == 1:
        (p, style), = candidates.items()
        return CheckpointLayout(wrapper, p, style)
    for p in PREFERRED_PREFIXES:
        if p in candidates:
            logger.info("several ResNets in checkpoint (%s); using prefix %r", sorted(candidates), p)
            return CheckpointLayout(wrapper, p, candidates[p])
    raise BackboneLoadError(
        f"several ResNets in checkpoint with prefixes {sorted(candidates)}; choose one with prefix=..."
    )


_TV_PATTERNS: Tuple[Tuple["re.Pattern[str]", str], ...] = (
    (re.compile(r"^conv1\.weight$"), "stem.conv1.weight"),
    (re.compile(r"^bn1\.(\w+)$"), r"stem.conv1.norm.\1"),
    (re.compile(r"^layer(\d)\.(\d+)\.conv(\d)\.weight$"), "res{s}.{1}.conv{2}.weight"),
    (re.compile(r"^layer(\d)\.(\d+)\.bn(\d)\.(\w+)$"), "res{s}.{1}.conv{2}.norm.{3}"),
    (re.compile(r"^layer(\d)\.(\d+)\.downsample\.0\.weight$"), "res{s}.{1}.shortcut.weight"),
    (re.compile(r"^layer(\d)\.(\d+)\.downsample\.1\.(\w+)$"), "res{s}.{1}.shortcut.norm.{2}"),
)


def torchvision_to_detectron2_name(name: str) -> Optional[str]:
    """``layer1.0.bn2.weight`` -> ``res2.0.conv2.norm.weight``; None for non-trunk names."""
    for pattern, template in _TV_PATTERNS:
        m = pattern.match(name)
        if m is None:
            continue
        if template.startswith("stem"):
            return m.expand(template)
        groups = m.groups()
        return template.format(*groups, s=int(groups[0]) + 1)
    return None


def expected_torchvision_shapes(arch: str = "resnet50") -> "OrderedDict[str, Tuple[int, ...]]":
    """Trunk tensors of a torchvision ResNet (no fc, no step counters), built on the meta device."""
    import torchvision

    if not arch.startswith(("resnet", "resnext", "wide_resnet")) or not hasattr(torchvision.models, arch):
        raise ValueError(f"unknown torchvision ResNet architecture {arch!r}")
    with torch.device("meta"):
        model: nn.Module = getattr(torchvision.models, arch)(weights=None)
    return OrderedDict(
        (k, tuple(v.shape)) for k, v in model.state_dict().items()
        if not k.startswith("fc.") and not k.endswith(BOOKKEEPING_SUFFIXES)
    )


def _detectron2_to_torchvision_shapes(arch: str) -> Dict[str, Tuple[Tuple[int, ...], str]]:
    """detectron2 trunk name -> (shape, torchvision name), for checking detectron2-style inputs."""
    out = {}
    for tv_name, shape in expected_torchvision_shapes(arch).items():
        d2 = torchvision_to_detectron2_name(tv_name)
        assert d2 is not None, tv_name
        out[d2] = (shape, tv_name)
    return out


def convert_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    layout: CheckpointLayout,
    arch: str = "resnet50",
    source: str = "<state dict>",
) -> Tuple["OrderedDict[str, torch.Tensor]", ConversionReport]:
    """Rename the backbone of ``state_dict`` to detectron2 names and account for every key."""
    report = ConversionReport(source=source, layout=layout, arch=arch)
    expected = _detectron2_to_torchvision_shapes(arch)  # d2 name -> (shape, tv name)
    converted: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    p = layout.prefix
    for key, value in state_dict.items():
        if not key.startswith(p):
            report.outside_prefix.append(key)
            continue
        rest = key[len(p):]
        if rest.endswith(BOOKKEEPING_SUFFIXES):
            report.dropped_bookkeeping.append(key)
            continue
        d2_name = torchvision_to_detectron2_name(rest) if layout.style == "torchvision" else rest
        if d2_name is None or d2_name not in expected:
            (report.dropped_heads if rest.startswith(HEAD_PREFIXES) else report.unmatched).append(key)
            continue
        want = expected[d2_name][0]
        if tuple(value.shape) != want:
            report.shape_mismatch.append((key, tuple(value.shape), want))
            continue
        tensor = value.detach().to(torch.float32).contiguous().clone()
        bad = int((~torch.isfinite(tensor)).sum())
        if bad:  # a diverged or corrupted checkpoint: converting it would train or probe garbage
            report.non_finite.append((key, bad, tensor.numel()))
            continue
        converted[d2_name] = tensor
        report.converted.append((key, d2_name))
    for d2_name, (_, tv_name) in expected.items():
        if d2_name not in converted:
            name = tv_name if layout.style == "torchvision" else d2_name
            if not any(t[0] == p + name for t in report.shape_mismatch + report.non_finite):
                report.missing.append(p + name)
    return converted, report


def convert_checkpoint(
    path: str,
    arch: str = "resnet50",
    prefix: Optional[str] = None,
    trust_pickle: bool = False,
    strict: bool = True,
) -> Tuple["OrderedDict[str, torch.Tensor]", ConversionReport]:
    """Read ``path``, detect its layout and convert its backbone.

    With ``strict`` (the default) an incomplete backbone raises :class:`BackboneLoadError` whose
    message is the full report; ``strict=False`` returns the report for inspection instead.
    """
    state_dict, wrapper = unwrap_state_dict(load_checkpoint_file(path, trust_pickle=trust_pickle))
    layout = detect_layout(state_dict, wrapper, prefix)
    converted, report = convert_state_dict(state_dict, layout, arch, source=path)
    if strict and not report.ok:
        raise BackboneLoadError("backbone not fully loaded from checkpoint\n" + report.summary())
    return converted, report


def save_detectron2_pkl(weights: Mapping[str, torch.Tensor], out_path: str) -> None:
    """Write the detectron2-loadable pkl (numpy arrays, matching heuristics on), atomically."""
    payload = {
        "model": {k: v.detach().cpu().numpy() for k, v in weights.items()},
        "__author__": "alpseg",
        "matching_heuristics": True,
    }
    with atomic_open(out_path, "wb") as f:
        pickle.dump(payload, f)


# ------------------------------------------------------------------------------------------------
# verification after loading into a detectron2 model


def verify_backbone_loaded(model: nn.Module, weights: Mapping[str, torch.Tensor]) -> List[str]:
    """Check that every converted weight sits, unchanged, in exactly one tensor of ``model``.

    detectron2's checkpointer only logs keys it could not place; this turns that into an error.
    A converted key ``k`` belongs to the model key equal to ``k`` or ending with ``"." + k``
    (detectron2's matching rule). Returns the model keys that were verified.
    """
    model_state = model.state_dict()
    problems: List[str] = []
    verified: List[str] = []
    for key, value in weights.items():
        hits = [m for m in model_state if m == key or m.endswith("." + key)]
        if len(hits) != 1:
            problems.append(f"{key}: {'no' if not hits else len(hits)} matching model tensors {hits[:3]}")
            continue
        loaded = model_state[hits[0]]
        if tuple(loaded.shape) != tuple(value.shape) or not torch.equal(
            loaded.detach().cpu().to(torch.float32), value.detach().cpu().to(torch.float32)
        ):
            problems.append(f"{key}: model tensor {hits[0]} does not hold the checkpoint value")
            continue
        verified.append(hits[0])
    if problems:
        raise BackboneLoadError(
            f"backbone not fully loaded into the model ({len(problems)} of {len(weights)} tensors):\n  "
            + "\n  ".join(problems)
        )
    return verified
