"""Open-vocabulary classification shared by FCOS-MO and Mask R-CNN* (paper section 3.2).

A region feature is projected to the text-embedding dimension, L2-normalized and compared with fixed
phrase embeddings by cosine similarity divided by a temperature. The background "phrase" is the zero
vector, so its logit is always 0; it is appended as the **last** logit column. Training uses a
softmax over {the batch's phrases, background} (the other phrases of the batch act as negatives) and
down-weights the log-probabilities of background regions by ``alpha`` because they vastly outnumber
foreground regions.
"""
from __future__ import annotations

import math
from typing import Optional, Union

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["OpenVocabClassifier", "region_phrase_contrastive_loss", "append_background_logit"]


def append_background_logit(logits: Tensor) -> Tensor:
    """Append the background column: the cosine with the zero vector, i.e. a logit of exactly 0."""
    return torch.cat([logits, logits.new_zeros(logits.shape[:-1] + (1,))], dim=-1)


class OpenVocabClassifier(nn.Module):
    """Project region features to the text space and score them against phrase embeddings.

    ``forward(x, phrase_embeddings)`` returns logits with ``K + 1`` entries in the last dimension:
    ``cos(proj(x), e_k) / tau`` for the ``K`` phrases, then the background logit 0 (plus the optional,
    non-paper learnable foreground bias, see ``fg_bias_prior``).

    Accepted feature layouts:

    * ``(..., C)`` (e.g. ``(R, C)`` RoI features of Mask R-CNN*): a linear projection;
    * ``(N, C, H, W)`` dense maps (FCOS-MO's classification tower): the same weights used as a 1x1
      convolution; the output is channels-last, ``(N, H, W, K + 1)``, which flattens to detectron2's
      ``(N, H*W, K + 1)`` order (``permute_to_N_HWA_K`` with one anchor).
    """

    def __init__(
        self,
        in_channels: int,
        embed_dim: int = 512,
        temperature: float = 0.01,
        *,
        fg_bias_prior: float = 0.0,
    ):
        """
        Args:
            in_channels: channels of the region features.
            embed_dim: dimension of the phrase embeddings (512 for CLIP ViT-B/32).
            temperature: tau; logits are cosine / tau (0.01 in the paper).
            fg_bias_prior: 0 (default) is the paper's classifier: logits exactly cosine / tau and a
                fixed 0 for background. If > 0, one learnable scalar is added to every *foreground*
                logit, initialised to ``log(p / (1 - p))``: equivalent to a learnable background
                logit, it starts foreground probabilities near ``p`` as FCOS's prior does. Not in
                the paper; an option for ``MODEL.FCOS_MO.LEARNABLE_FG_BIAS`` (docs/fcos_mo.md measures it).
        """
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not 0.0 <= fg_bias_prior < 1.0:
            raise ValueError(f"fg_bias_prior must be in [0, 1), got {fg_bias_prior}")
        self.in_channels = int(in_channels)
        self.embed_dim = int(embed_dim)
        self.temperature = float(temperature)
        self.proj = nn.Linear(self.in_channels, self.embed_dim)
        nn.init.normal_(self.proj.weight, std=0.01)
        nn.init.constant_(self.proj.bias, 0.0)
        if fg_bias_prior > 0:
            self.fg_bias: Optional[nn.Parameter] = nn.Parameter(
                torch.tensor(math.log(fg_bias_prior / (1.0 - fg_bias_prior)))
            )
        else:
            self.register_parameter("fg_bias", None)

    def embed(self, x: Tensor) -> Tensor:
        """L2-normalized projections, channels last: ``(..., C) -> (..., D)``; ``(N,C,H,W) -> (N,H,W,D)``."""
        if x.dim() == 4:
            if x.shape[1] != self.in_channels:
                raise ValueError(f"expected {self.in_channels} channels, got input of shape {tuple(x.shape)}")
            weight = self.proj.weight[:, :, None, None]
            y = F.conv2d(x, weight, self.proj.bias).permute(0, 2, 3, 1)
        else:
            y = self.proj(x)
        return F.normalize(y, dim=-1)

    def logits(self, region_embeddings: Tensor, phrase_embeddings: Tensor) -> Tensor:
        """Cosine / tau of unit region embeddings ``(..., D)`` against phrases ``(K, D)``, plus background.

        The phrase rows are re-normalized here so that a bank stored in float16 (or a caller passing
        raw encoder outputs) still yields true cosines. ``K`` may be 0 (an empty vocabulary): the
        result is then only the background column.
        """
        if phrase_embeddings.dim() != 2 or phrase_embeddings.shape[1] != region_embeddings.shape[-1]:
            raise ValueError(
                f"phrase embeddings must be (K, {region_embeddings.shape[-1]}), "
                f"got {tuple(phrase_embeddings.shape)}"
            )
        text = F.normalize(phrase_embeddings.to(region_embeddings), dim=-1)
        fg = torch.matmul(region_embeddings, text.t()) / self.temperature
        if self.fg_bias is not None:
            fg = fg + self.fg_bias
        return append_background_logit(fg)

    def forward(self, x: Tensor, phrase_embeddings: Tensor) -> Tensor:
        return self.logits(self.embed(x), phrase_embeddings)


def region_phrase_contrastive_loss(
    logits: Tensor,
    targets: Tensor,
    bg_alpha: float = 0.1,
    normalizer: Optional[Union[float, Tensor]] = None,
) -> Tensor:
    """Region-phrase contrastive loss with alpha-scaled background terms (paper section 3.2).

    Args:
        logits: ``(M, K + 1)`` logits, the last column being background (see
            :class:`OpenVocabClassifier`). Any leading shape is accepted and flattened.
        targets: ``(M,)`` long: a phrase index in ``[0, K)``, ``K`` for background, or ``-1`` to
            ignore the region (it then contributes nothing).
        bg_alpha: the weight alpha of background regions' log-probabilities.
        normalizer: the loss is ``sum_i w_i * (-log softmax(logits_i)[target_i]) / normalizer`` with
            ``w_i = 1`` for foreground and ``alpha`` for background regions. ``None`` means the number
            of foreground regions (at least 1), the usual normalization of dense detectors (FCOS,
            RetinaNet); FCOS-MO passes detectron2's EMA of that count, Mask R-CNN* may pass the number
            of sampled RoIs to get a per-RoI mean.

    The softmax is computed in float32 so that cos / 0.01 logits are safe under AMP.
    """
    num_cols = logits.shape[-1]
    logits = logits.reshape(-1, num_cols).float()
    targets = targets.reshape(-1).long()
    if logits.shape[0] != targets.shape[0]:
        raise ValueError(f"{logits.shape[0]} logit rows but {targets.shape[0]} targets")
    bg = num_cols - 1
    if targets.numel() and (targets.max() > bg or targets.min() < -1):
        raise ValueError(f"targets must lie in [-1, {bg}]")
    valid = targets >= 0
    is_fg = valid & (targets != bg)
    nll = F.cross_entropy(logits, targets.clamp(min=0), reduction="none")
    weights = torch.where(is_fg, torch.ones_like(nll), torch.full_like(nll, float(bg_alpha)))
    weights = weights * valid.to(weights.dtype)
    if normalizer is None:
        normalizer = max(int(is_fg.sum().item()), 1)
    return (nll * weights).sum() / normalizer
