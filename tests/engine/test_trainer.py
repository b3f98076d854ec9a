"""Pieces of AlpsegTrainer that need no training run: RNG states survive a weights-only checkpoint."""
import io
import random

import numpy as np
import torch

from alpseg.engine.trainer import rng_states, set_rng_states


def _draws():
    return random.random(), float(np.random.rand()), float(np.random.randn()), float(torch.rand(1))


def test_rng_states_round_trip_through_a_weights_only_checkpoint():
    random.seed(1)
    np.random.seed(2)
    np.random.randn()  # leaves a cached gaussian in numpy's state
    torch.manual_seed(3)
    buf = io.BytesIO()
    torch.save({"rng": [rng_states()]}, buf)
    expected = _draws()
    buf.seek(0)
    state = torch.load(buf, weights_only=True)["rng"][0]  # what detectron2's checkpointer does on torch >= 2.6
    _draws()
    set_rng_states(state)
    assert _draws() == expected
