"""Phrase encoder: open_clip text tower + a prompt set -> one unit vector per phrase.

Embedding of a phrase (ViLD's procedure): fill the phrase into every template of the prompt set
(``alpseg.text.prompts``), encode each sentence with the CLIP text tower, L2-normalize each sentence
embedding, average them, and L2-normalize the mean.

Weights (``pretrained``):

* an open_clip tag such as ``"openai"`` (downloaded by open_clip / Hugging Face into their cache),
* a path to a local checkpoint file (what open_clip's ``create_model(pretrained=PATH)`` accepts),
* ``"none"``: random weights drawn from a fixed seed, so two runs give identical embeddings. Only for
  tests and plumbing: random text embeddings carry no meaning.

Missing weights stop with an error that says how to get them; nothing ever falls back to random
weights silently.

Speed: CLIP's text tower is causal and pools at the end-of-text token, so the padding after the
longest sentence of a batch cannot change the pooled feature. For such models (open_clip's ``CLIP``
class: every OpenAI CLIP and most LAION models) sentences are encoded truncated to the longest
sentence of the batch instead of the full 77 tokens, which is about 5x faster for short phrases and
gives the same embeddings up to float rounding (``tests/text/test_encoder.py`` checks it). Other
architectures use ``encode_text`` unchanged. Tokenizing 63 sentences per phrase in Python would then
be the bottleneck on a GPU, so ``PromptTokenizer`` tokenizes each template's fixed text once and each
phrase once, and joins the token ids (exact for CLIP's tokenizer, see its docstring).
"""
from __future__ import annotations

import logging
import os
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from alpseg.utils.device import pick_device

from .prompts import expand_prompts, get_templates, prompt_name, prompt_parts, validate_prompt_set

__all__ = [
    "RANDOM_WEIGHTS",
    "PhraseEncoder",
    "PromptTokenizer",
    "encode_phrases",
    "encoder_id",
    "load_text_model",
    "resolve_device",
]

logger = logging.getLogger(__name__)

#: value of ``pretrained`` that asks for seeded random weights on purpose
RANDOM_WEIGHTS = "none"
DEFAULT_SEED = 0

_MODEL_CACHE: Dict[Tuple[str, str, int, str], torch.nn.Module] = {}


def _is_random(pretrained: Optional[str]) -> bool:
    return pretrained is not None and str(pretrained).strip().lower() == RANDOM_WEIGHTS


def _looks_like_path(pretrained: str) -> bool:
    return (
        os.sep in pretrained
        or pretrained.startswith(("~", "."))
        or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors", ".ckpt"))
    )


def encoder_id(model_name: str, pretrained: str, seed: int = DEFAULT_SEED) -> str:
    """The name a bank records for the encoder that made it, e.g. ``"open_clip:ViT-B-32:openai"``.

    A local checkpoint is recorded by its file name only (``file:<basename>``), so a bank stays valid
    when the checkpoint is moved to another machine or directory.
    """
    if not model_name:
        raise ValueError("empty text-encoder model name")
    if pretrained is None or str(pretrained).strip() == "":
        raise ValueError(
            "pretrained must be an open_clip tag (e.g. 'openai'), a checkpoint path, or 'none' for "
            "random weights; got an empty value"
        )
    p = str(pretrained).strip()
    if _is_random(p):
        tag = f"{RANDOM_WEIGHTS}(seed={seed})"
    elif _looks_like_path(p) or os.path.isfile(p):
        tag = "file:" + os.path.basename(os.path.expanduser(p))
    else:
        tag = p
    return f"open_clip:{model_name}:{tag}"


def resolve_device(device: Optional[str] = None) -> torch.device:
    """``None`` / ``"auto"`` -> the first CUDA GPU when there is one, else the CPU.

    The package's one device picker, :func:`alpseg.utils.device.pick_device`, under this module's old name."""
    return pick_device(device)


def _how_to_get_weights(model_name: str, pretrained: str) -> str:
    return (
        f"To use real weights, run once on a machine with internet access:\n"
        f"    python -c \"import open_clip; open_clip.create_model('{model_name}', pretrained='{pretrained}')\"\n"
        f"and copy the Hugging Face cache (~/.cache/huggingface) here, or save the checkpoint and pass "
        f"its path (--pretrained PATH, or MODEL.OPEN_VOCAB.PRETRAINED PATH). To use random weights on "
        f"purpose (tests, plumbing; embeddings are then meaningless), pass --pretrained none "
        f"(MODEL.OPEN_VOCAB.PRETRAINED none)."
    )


def load_text_model(
    model_name: str = "ViT-B-32",
    pretrained: str = "openai",
    device: Optional[str] = None,
    seed: int = DEFAULT_SEED,
) -> torch.nn.Module:
    """Build an open_clip model in eval mode on ``device`` (cached per model/weights/device).

    The image tower is dropped right after loading: only the text tower is ever used here.
    """
    import open_clip

    dev = resolve_device(device)
    p = str(pretrained).strip() if pretrained is not None else ""
    key = (model_name, p, seed, str(dev))
    if key in _MODEL_CACHE:
        return _MODEL_CACHE[key]
    if model_name not in open_clip.list_models():
        raise ValueError(
            f"unknown open_clip model {model_name!r}; open_clip.list_models() lists the valid names "
            f"(e.g. 'ViT-B-32', 'ViT-L-14', 'RN50')"
        )
    encoder_id(model_name, p)  # validates an empty value
    if _is_random(p):
        # fork_rng: seeding must not disturb the caller's global RNG stream
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = open_clip.create_model(model_name, pretrained=None, device="cpu")
    elif _looks_like_path(p) or os.path.isfile(os.path.expanduser(p)):
        path = os.path.expanduser(p)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"CLIP checkpoint {path!r} does not exist.\n" + _how_to_get_weights(model_name, "openai")
            )
        model = open_clip.create_model(model_name, pretrained=path, device="cpu")
    else:
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        if p not in tags:
            raise ValueError(
                f"open_clip has no pretrained weights {p!r} for {model_name!r} (known tags: {tags}); "
                f"pass a tag, a checkpoint path, or 'none' for random weights"
            )
        try:
            model = open_clip.create_model(
                model_name, pretrained=p, device="cpu", require_pretrained=True
            )
        except Exception as e:  # open_clip / huggingface_hub raise several types when offline
            raise RuntimeError(
                f"could not load the pretrained CLIP weights {p!r} of {model_name!r}: {e}\n"
                + _how_to_get_weights(model_name, p)
            ) from e
    if hasattr(model, "visual"):
        model.visual = None  # free the image tower (text-only use)
    model = model.to(dev).eval().requires_grad_(False)
    _MODEL_CACHE[key] = model
    return model


def _can_truncate(model: torch.nn.Module) -> bool:
    """True if padding after the pooled token cannot change the output (causal mask, EOT pooling)."""
    import open_clip

    return (
        isinstance(model, open_clip.model.CLIP)
        and getattr(model, "attn_mask", None) is not None
        and getattr(model, "text_pool_type", None) in ("argmax", "eos")
    )


def _pool_index(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    if model.text_pool_type == "argmax":
        return tokens.argmax(dim=-1)
    return (tokens == model.text_eos_id).int().argmax(dim=-1)


def _encode_truncated(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode_text(tokens)`` computed on the first L positions only (L = last pooled token + 1)."""
    length = int(_pool_index(model, tokens).max()) + 1
    tokens = tokens[:, :length]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype)
    x = x + model.positional_embedding[:length].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0], device=x.device), _pool_index(model, tokens)]
    if model.text_projection is not None:
        if isinstance(model.text_projection, torch.nn.Linear):
            x = model.text_projection(x)
        else:
            x = x @ model.text_projection
    return x


# Names the part-wise tokenization handles exactly: lowercase ASCII words, starting and ending with a
# letter or digit, so that no token of CLIP's word regex can straddle a name/template boundary and the
# tokenizer's text cleaning (ftfy, html unescape, whitespace, lowercase) leaves them unchanged.
_PLAIN_NAME = re.compile(r"[a-z0-9](?:[a-z0-9 '\-]*[a-z0-9])?")


class PromptTokenizer:
    """Token ids of all prompt sentences of phrases, ``(len(phrases) * T, context_length)``.

    CLIP's ``SimpleTokenizer`` cleans the text, splits it with a word regex that never crosses
    whitespace or a letter/punctuation border, and BPE-encodes every word on its own. For a plain name
    (``_PLAIN_NAME``) between a prefix ending in a space and a suffix starting with a space or
    punctuation (checked for every template), the ids of ``prefix + name + suffix`` are therefore ids(prefix) + ids(name) + ids(suffix): the
    template parts are encoded once per article, the name once per phrase. Other names, and other
    tokenizers, go through the tokenizer sentence by sentence.
    """

    def __init__(self, tokenizer, prompts: str):
        import open_clip.tokenizer as oct

        self.tokenizer = tokenizer
        self.prompts = prompts
        self.num_templates = len(get_templates(prompts))
        self.context_length = int(tokenizer.context_length)
        self.fast = (
            isinstance(tokenizer, oct.SimpleTokenizer)
            and tokenizer.reduction_fn is None
            and tokenizer.clean_fn is getattr(oct, "_clean_lower", None)
        )
        self._parts: Dict[Tuple[Tuple[str, str], ...], Optional[List[Tuple[List[int], List[int]]]]] = {}

    def _template_ids(self, name: str) -> Optional[List[Tuple[List[int], List[int]]]]:
        """Token ids of the template parts around ``name``; None if a part could merge with the name."""
        parts = prompt_parts(name, self.prompts)  # cached; depends on the name via its article only
        if parts not in self._parts:
            safe = all(
                (not pre or pre[-1].isspace()) and (not suf or suf[0].isspace() or suf[0] in ".,;:!?")
                for pre, suf in parts
            )
            self._parts[parts] = (
                [(self.tokenizer.encode(p), self.tokenizer.encode(s)) for p, s in parts] if safe else None
            )
        return self._parts[parts]

    def __call__(self, phrases: Sequence[str]) -> torch.Tensor:
        return self.tokenize(phrases)[0]

    def tokenize(self, phrases: Sequence[str]) -> Tuple[torch.Tensor, List[bool]]:
        """Token ids (as ``__call__``) and, per phrase, whether any of its prompt sentences was longer
        than the context and got truncated (the tokenizer's rule: cut, then end-of-text last)."""
        out = np.zeros((len(phrases) * self.num_templates, self.context_length), dtype=np.int64)
        truncated = [False] * len(phrases)
        sot, eot = getattr(self.tokenizer, "sot_token_id", None), getattr(self.tokenizer, "eot_token_id", None)
        row = 0
        for i, phrase in enumerate(phrases):
            name = prompt_name(phrase)
            template_ids = self._template_ids(name) if self.fast and _PLAIN_NAME.fullmatch(name) else None
            if template_ids is None:
                sentences = expand_prompts(phrase, self.prompts)
                out[row : row + self.num_templates] = self.tokenizer(sentences).numpy()
                truncated[i] = any(self._was_truncated(s, out[row + k]) for k, s in enumerate(sentences))
                row += self.num_templates
                continue
            name_ids = self.tokenizer.encode(name)
            for pre, suf in template_ids:
                ids = [sot] + pre + name_ids + suf + [eot]
                if len(ids) > self.context_length:  # the tokenizer's own truncation rule
                    ids = ids[: self.context_length - 1] + [eot]
                    truncated[i] = True
                out[row, : len(ids)] = ids
                row += 1
        return torch.from_numpy(out), truncated

    def _was_truncated(self, sentence: str, ids: np.ndarray) -> bool:
        if ids[-1] == 0:  # the row has padding: the sentence fit
            return False
        if not hasattr(self.tokenizer, "encode"):
            return True  # a full row of a tokenizer that cannot tell: assume it was cut
        return len(self.tokenizer.encode(sentence)) + 2 > self.context_length


class PhraseEncoder:
    """Encodes phrases with one open_clip text model and one prompt set.

    ``encoder_name`` and ``prompts`` are what a ``PhraseBank`` records and checks, so embeddings of
    different encoders or prompt sets can never be mixed in one bank.
    """

    def __init__(
        self,
        model_name: str = "ViT-B-32",
        pretrained: str = "openai",
        prompts: str = "vild",
        device: Optional[str] = None,
        batch_size: int = 32,
        seed: int = DEFAULT_SEED,
        truncate: bool = True,
    ):
        import open_clip

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model_name = model_name
        self.pretrained = str(pretrained).strip()
        self.prompts = validate_prompt_set(prompts)
        self.encoder_name = encoder_id(model_name, self.pretrained, seed)
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.model = load_text_model(model_name, self.pretrained, str(self.device), seed)
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.prompt_tokenizer = PromptTokenizer(self.tokenizer, self.prompts)
        self.truncate = truncate and _can_truncate(self.model)
        self.num_templates = len(get_templates(self.prompts))
        #: phrases embedded from a truncated prompt (longer than the encoder's context), in order
        self.truncated_phrases: List[str] = []
        self._full_rows: Dict[bytes, str] = {}  # token ids of phrases that reach the context end -> phrase

    @torch.no_grad()
    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Raw (unnormalized) text-tower features of token ids, float32 (S, D) on the CPU."""
        tokens = tokens.to(self.device)
        if self.truncate:
            feats = _encode_truncated(self.model, tokens)
        else:
            feats = self.model.encode_text(tokens)
        return feats.float().cpu()

    def encode_sentences(self, sentences: Sequence[str]) -> torch.Tensor:
        """Raw (unnormalized) text-tower features of sentences, float32 (S, D) on the CPU."""
        return self.encode_tokens(self.tokenizer(list(sentences)))

    def encode(self, phrases: Sequence[str], progress: bool = False) -> np.ndarray:
        """Unit-norm embeddings (N, D) float32 of ``phrases``, in order (duplicates allowed).

        Phrases whose prompt sentences exceed the text encoder's context (77 tokens for CLIP) are
        embedded from their first tokens, as CLIP's tokenizer truncates; they are counted in
        :attr:`truncated_phrases` and a warning names them. Two *different* phrases that become
        identical token sequences (e.g. long phrases that differ only after the cut) would get
        identical rows, so that is an error (``ValueError`` naming both), also across calls.
        """
        phrases = list(phrases)
        out: List[np.ndarray] = []
        nt = self.num_templates
        batches = range(0, len(phrases), self.batch_size)
        newly_truncated: List[str] = []
        with tqdm(total=len(phrases), desc="encoding phrases", unit="phrase", disable=not progress) as bar:
            for start in batches:
                chunk = phrases[start : start + self.batch_size]
                tokens, truncated = self.prompt_tokenizer.tokenize(chunk)
                newly_truncated += self._check_truncation(chunk, tokens, truncated)
                feats = F.normalize(self.encode_tokens(tokens), dim=-1)
                mean = feats.view(len(chunk), nt, -1).mean(dim=1)
                out.append(F.normalize(mean, dim=-1).numpy())
                bar.update(len(chunk))
        if newly_truncated:
            logger.warning(
                "%d of %d phrases are longer than the text encoder's %d-token context in at least one prompt "
                "and were truncated (embedded from their first tokens): %s",
                len(newly_truncated), len(phrases), self.prompt_tokenizer.context_length, newly_truncated[:3],
            )
        if not out:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        return np.concatenate(out, axis=0).astype(np.float32, copy=False)

    def _check_truncation(self, phrases: List[str], tokens: torch.Tensor, truncated: List[bool]) -> List[str]:
        """Record truncated phrases; refuse two different phrases with the same full-length tokens."""
        rows = tokens.view(len(phrases), self.num_templates, -1).numpy()
        new = []
        for phrase, ids, cut in zip(phrases, rows, truncated):
            if not cut and not ids[:, -1].any():
                continue  # every sentence fits with room to spare: the tokens are the phrase's own
            key = ids.tobytes()
            other = self._full_rows.setdefault(key, phrase)
            if other != phrase:
                raise ValueError(
                    f"phrases {other!r} and {phrase!r} are identical in their first "
                    f"{self.prompt_tokenizer.context_length} tokens (CLIP truncates longer text), so they would "
                    "get the same embedding: shorten or reword one of them"
                )
            if cut and phrase not in self.truncated_phrases:
                self.truncated_phrases.append(phrase)
                new.append(phrase)
        return new

    @property
    def embed_dim(self) -> int:
        proj = self.model.text_projection
        if isinstance(proj, torch.nn.Linear):
            return int(proj.out_features)
        if proj is not None:
            return int(proj.shape[1])
        return int(self.model.ln_final.normalized_shape[0])


def encode_phrases(
    phrases: Iterable[str],
    model_name: str = "ViT-B-32",
    pretrained: str = "openai",
    prompts: str = "vild",
    device: Optional[str] = None,
    batch_size: int = 32,
) -> np.ndarray:
    """Functional form of ``PhraseEncoder(...).encode(phrases)``: (N, D) float32 unit rows."""
    encoder = PhraseEncoder(model_name, pretrained, prompts, device=device, batch_size=batch_size)
    return encoder.encode(list(phrases))
