"""The demo recipe trains stably with phrase embeddings that share one dominant direction.

Root cause of issue #23's seed-2 failure (ALP-supervised FCOS-MO at AP50 6.5 / 0.3): the random text
tower's embeddings have a mean pairwise cosine of 0.94, so cos / 0.01 moves every phrase's logit
together by up to +-95 against the background's 0. In the first iterations the whole image flips
between "all foreground" and "all background", the classification loss bursts (gradient norms of
100-600 against about 5 later), and the bursts inflate the BN-normalized conv weights (the stem's
norm went from 2.5 to 29 at seed 2). A weight norm k times larger divides the effective learning
rate by k^2, so training froze early, how early depending on the seed. Clipping the joint gradient
norm (``configs/demo/Base-Demo.yaml``) removes the bursts. This test trains the demo's ALP recipe
on the miniature world with such a bank and checks the weights stay near their initial norm; with
clipping off the same run inflates them, so the test would have caught the failure.
"""
import json
import os

import numpy as np
import pytest

from alpseg.config import load_config
from alpseg.data.miniature import CLASSES
from alpseg.text.bank import PhraseBank
from alpseg.text.encoder import encoder_id

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ITERS = 24


def _correlated_bank(path, phrases, mean_cos=0.94, seed=0):
    """Unit rows c + noise with the random text tower's statistics (mean pairwise cosine ~ 0.94)."""
    rng = np.random.default_rng(seed)
    common = rng.normal(size=512)
    common /= np.linalg.norm(common)
    noise = rng.normal(size=(len(phrases), 512)) / np.sqrt(512)
    scale = np.sqrt((1 - mean_cos) / mean_cos)
    emb = common + scale * noise
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    PhraseBank(phrases, emb.astype(np.float32), encoder_id("ViT-B-32", "none"), "single").save(path)
    return emb


def _train(tmp_path, bank, clip: bool):
    import torch
    from detectron2.engine import HookBase

    from alpseg.engine.trainer import AlpsegTrainer

    cfg = load_config(os.path.join(REPO, "configs/demo/fcos_mo_alp.yaml"), [
        "OUTPUT_DIR", str(tmp_path / f"clip_{clip}"), "MODEL.OPEN_VOCAB.EMBEDDINGS", bank, "SEED", "2",
        "SOLVER.CLIP_GRADIENTS.ENABLED", str(clip), "SOLVER.MAX_ITER", "400", "TEST.EVAL_PERIOD", "0"])
    trainer = AlpsegTrainer(cfg)
    stem = trainer.model.backbone.bottom_up.stem.conv1.weight
    start = float(stem.norm())

    class Stop(HookBase):
        def after_step(self):
            if self.trainer.iter + 1 >= ITERS:
                raise StopIteration

    trainer.register_hooks([Stop()])
    trainer.resume_or_load(resume=False)
    torch.manual_seed(0)
    with pytest.raises(StopIteration):
        trainer.train()
    return float(stem.norm()) / start


@pytest.mark.timeout(900)
def test_demo_recipe_keeps_weights_near_their_initial_norm(miniature_with_alps, tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", miniature_with_alps)
    with open(os.path.join(miniature_with_alps, "alps", "locnar_oid_train_alps.json"), encoding="utf-8") as f:
        phrases = sorted(set(json.load(f)["phrases"]) | {c.name for c in CLASSES})
    bank = str(tmp_path / "bank.npz")
    emb = _correlated_bank(bank, phrases)
    cos = emb @ emb.T
    assert abs(cos[~np.eye(len(phrases), dtype=bool)].mean() - 0.94) < 0.02
    clipped = _train(tmp_path, bank, clip=True)
    unclipped = _train(tmp_path, bank, clip=False)
    assert clipped < 1.5, f"stem weights grew {clipped:.2f}x in {ITERS} iterations with clipping"
    assert unclipped > 2 * clipped, (clipped, unclipped)  # the failure this recipe prevents
