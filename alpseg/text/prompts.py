"""Prompt sets for phrase embeddings and the phrase normalization shared by the whole package.

A phrase (an ALP phrase or a class name) is embedded by filling it into a set of sentence templates,
encoding every sentence with the CLIP text tower and averaging (see ``alpseg.text.encoder``). This
module owns the *text* side of that procedure, following ViLD (Gu et al. 2022, their public demo):

* ``normalize_phrase``: the canonical form of a phrase. It is also the key of the phrase bank, so every
  module that stores or looks up phrases (curation, dataset registration, models) must call it.
* ``article``: "an" before a vowel, else "a" (ViLD's rule; no attempt at "an hour" / "a unicorn").
* the prompt sets: ``"vild"`` = ViLD's 63 templates (package data ``resources/vild_templates.txt``) with
  ViLD's "This is " prefix for sentences starting with "a" or "the"; ``"single"`` = CLIP's plain
  "a photo of {article} {}." used as is.
"""
from __future__ import annotations

import functools
import os
import re
from typing import Dict, List, Tuple

__all__ = [
    "PROMPT_SETS",
    "article",
    "expand_prompts",
    "get_templates",
    "normalize_phrase",
    "prompt_name",
    "prompt_parts",
    "validate_prompt_set",
]

_RESOURCES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "resources")
_WHITESPACE = re.compile(r"\s+")

#: prompt-set name -> template file (or inline template) and whether ViLD's "This is " prefix applies
PROMPT_SETS: Dict[str, Dict[str, object]] = {
    "vild": {"file": "vild_templates.txt", "this_is": True},
    "single": {"templates": ("a photo of {article} {}.",), "this_is": False},
}


def normalize_phrase(phrase: str) -> str:
    """Canonical form of a phrase or class name: ``_`` -> space, ``/`` -> " or ", lowercase, stripped.

    ``_`` and ``/`` are ViLD's rules for LVIS- and Objects365-style names ("traffic_light",
    "cup/mug"). Runs of whitespace are collapsed to one space as well, so that "cup / mug" and
    "cup/mug" give the same key.
    """
    if not isinstance(phrase, str):
        raise TypeError(f"normalize_phrase expects a str, got {type(phrase).__name__}: {phrase!r}")
    text = phrase.replace("_", " ").replace("/", " or ").lower()
    return _WHITESPACE.sub(" ", text).strip()


def article(phrase: str) -> str:
    """ViLD's indefinite article: "an" if the (normalized) phrase starts with a vowel letter, else "a"."""
    if not phrase:
        raise ValueError("article() of an empty phrase")
    return "an" if phrase[0].lower() in "aeiou" else "a"


def validate_prompt_set(prompts: str) -> str:
    """Return ``prompts`` if it names a known prompt set, else raise a ``ValueError`` listing them."""
    if prompts not in PROMPT_SETS:
        raise ValueError(f"unknown prompt set {prompts!r}; choose one of {sorted(PROMPT_SETS)}")
    return prompts


@functools.lru_cache(maxsize=None)
def get_templates(prompts: str = "vild") -> Tuple[str, ...]:
    """The templates of a prompt set, each with one ``{}`` (the phrase) and optionally ``{article}``."""
    entry = PROMPT_SETS[validate_prompt_set(prompts)]
    if "file" in entry:
        path = os.path.join(_RESOURCES, str(entry["file"]))
        with open(path, "r", encoding="utf-8") as f:
            templates = tuple(line.rstrip("\n") for line in f if line.strip())
    else:
        templates = tuple(entry["templates"])  # type: ignore[arg-type]
    for t in templates:
        if t.count("{}") != 1:
            raise ValueError(f"prompt set {prompts!r}: template {t!r} must contain exactly one '{{}}'")
    return templates


def prompt_name(phrase: str) -> str:
    """The text filled into the templates: the normalized phrase without a trailing "." (ViLD's rm_dot)."""
    name = normalize_phrase(phrase).rstrip(".").strip()
    if not name:
        raise ValueError(f"cannot build prompts for an empty phrase (got {phrase!r})")
    return name


def prompt_parts(name: str, prompts: str = "vild") -> Tuple[Tuple[str, str], ...]:
    """``(prefix, suffix)`` of every sentence of ``name`` (a ``prompt_name``): sentence = prefix+name+suffix.

    The parts depend on the name only through its article (and, for a template starting with the
    name, whether the name itself starts with "a"/"the"), which lets the encoder tokenize them once.
    """
    return _prompt_parts(article(name), name.startswith(("a", "the")), validate_prompt_set(prompts))


@functools.lru_cache(maxsize=None)
def _prompt_parts(art: str, name_starts_a_the: bool, prompts: str) -> Tuple[Tuple[str, str], ...]:
    this_is = bool(PROMPT_SETS[prompts]["this_is"])
    parts = []
    for template in get_templates(prompts):
        prefix, suffix = template.replace("{}", "\x00").format(article=art).split("\x00")
        starts_a_the = prefix.startswith(("a", "the")) if prefix else name_starts_a_the
        if this_is and starts_a_the:
            prefix = "This is " + prefix
        parts.append((prefix, suffix))
    return tuple(parts)


def expand_prompts(phrase: str, prompts: str = "vild") -> List[str]:
    """The sentences that are encoded for one phrase, in template order.

    The phrase is normalized and a trailing "." removed (ViLD's ``rm_dot``) before it is filled in;
    with the "vild" set, sentences starting with "a" or "the" get ViLD's "This is " prefix.
    """
    name = prompt_name(phrase)
    return [prefix + name + suffix for prefix, suffix in prompt_parts(name, prompts)]
