"""Box quantization snaps ALP box edges outward to the Q * L / 256 grid (hand-computed values)."""
import numpy as np
import pytest

from alpseg.data.box_quantization import quantize_boxes, sample_quantization


def test_hand_computed_values():
    # 512 x 768 image: L = 512, so Q=8 -> 16 px cells, Q=16 -> 32 px, Q=32 -> 64 px.
    box = [[17.0, 33.0, 47.5, 60.0]]
    assert quantize_boxes(box, [8], 512, (512, 768)).tolist() == [[16, 32, 48, 64]]
    assert quantize_boxes(box, [16], 512, (512, 768)).tolist() == [[0, 32, 64, 64]]
    assert quantize_boxes(box, [32], 512, (512, 768)).tolist() == [[0, 0, 64, 64]]
    assert quantize_boxes(box, [0], 512, (512, 768)).tolist() == [[17.0, 33.0, 47.5, 60.0]]


def test_cells_follow_the_shorter_side_and_boxes_are_clipped():
    # 500 x 700 image, Q = 32: cell = 32 * 500 / 256 = 62.5 px. x2 = 690 -> 12 cells = 750 -> clipped to 700.
    out = quantize_boxes([[10, 70, 690, 490]], [32], 500, (500, 700))
    assert out.tolist() == [[0, 62.5, 700, 500]]


def test_edges_on_grid_lines_stay_despite_float_noise():
    # 64 - 1e-12 is "on" the line 64 of a 16 px grid: it must not move a whole cell.
    out = quantize_boxes([[16 + 1e-12, 32, 64 - 1e-12, 48]], [8], 512, (512, 512))
    assert out.tolist() == [[16, 32, 64, 48]]


def test_random_boxes_grow_outward_by_less_than_a_cell():
    rng = np.random.default_rng(0)
    h, w = 480, 640
    xy = rng.uniform(0, 1, (200, 4)) * [w, h, w, h]
    boxes = np.concatenate([np.minimum(xy[:, :2], xy[:, 2:]), np.maximum(xy[:, :2], xy[:, 2:])], axis=1)
    q = rng.choice([0, 8, 16, 32], size=200)
    out = quantize_boxes(boxes, q, min(h, w), (h, w))
    cell = np.where(q > 0, q * min(h, w) / 256, 1)[:, None]
    assert (out[:, :2] <= boxes[:, :2] + 1e-9).all() and (out[:, 2:] >= boxes[:, 2:] - 1e-9).all()
    assert (np.abs(out - boxes) < cell + 1e-9).all()
    moved = q > 0
    on_grid = np.isclose(out[moved] / cell[moved], np.round(out[moved] / cell[moved]))
    at_border = np.isclose(out[moved], [w, h, w, h])
    assert (on_grid | at_border).all()
    assert (out[~moved] == boxes[~moved]).all()


def test_sampling_is_uniform_over_the_choices_and_validated():
    q = sample_quantization(40000, [0, 8, 16, 32], np.random.default_rng(1))
    values, counts = np.unique(q, return_counts=True)
    assert values.tolist() == [0, 8, 16, 32]
    assert np.allclose(counts / 40000, 0.25, atol=0.01)
    assert sample_quantization(0, [], None).shape == (0,)
    with pytest.raises(ValueError, match="empty"):
        sample_quantization(3, [])
    with pytest.raises(ValueError, match=">= 0"):
        sample_quantization(3, [8, -1])
    with pytest.raises(ValueError, match="3 boxes but 2"):
        quantize_boxes(np.zeros((3, 4)), [8, 8], 100, (100, 100))
