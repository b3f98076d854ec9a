"""alpseg.app.segment without a browser: the ONNX hook, the predictor cache, and the detections table."""
import pytest
import torch
from detectron2.structures import Boxes, Instances

from alpseg.app import segment


def test_onnx_paths_go_to_alpseg_export_when_it_exists(monkeypatch):
    monkeypatch.setattr(segment, "_onnx_predictor_class", lambda: None)
    assert not segment.onnx_available()
    with pytest.raises(ValueError, match="m.onnx: ONNX models need alpseg.export.OnnxPredictor"):
        segment.SegmentSession().predictor("", "m.onnx", "dog, cat")

    built = []

    class FakeOnnxPredictor:
        def __init__(self, path, vocabulary):
            built.append((path, vocabulary))

    monkeypatch.setattr(segment, "_onnx_predictor_class", lambda: FakeOnnxPredictor)
    assert segment.onnx_available()
    session = segment.SegmentSession(max_predictors=1)
    first = session.predictor("", "m.onnx", "dog, cat")
    assert session.predictor("", "m.onnx", "dog, cat") is first  # cached
    session.predictor("", "m.onnx", "dog")  # evicts the first (one kept)
    session.predictor("", "m.onnx", "dog, cat")
    assert built == [("m.onnx", "dog, cat"), ("m.onnx", "dog"), ("m.onnx", "dog, cat")]


def test_a_checkpoint_needs_its_config():
    with pytest.raises(ValueError, match="needs its config file"):
        segment.SegmentSession().predictor("", "model_final.pth", "dog")


def test_detection_rows_filter_sort_and_count_mask_pixels():
    inst = Instances((10, 10))
    inst.pred_boxes = Boxes(torch.tensor([[0.0, 0.0, 4.0, 4.0], [1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 9.0, 9.0]]))
    inst.scores = torch.tensor([0.5, 0.9, 0.1])
    inst.pred_classes = torch.tensor([1, 0, 1])
    masks = torch.zeros(3, 10, 10, dtype=torch.bool)
    masks[0, :4, :4] = True
    masks[1, 2:4, 1:3] = True
    inst.pred_masks = masks
    rows = segment.detection_rows(inst, ["dog", "cat"], 0.2)
    assert rows == [[1, "dog", 0.9, 1.0, 2.0, 3.0, 4.0, 4], [2, "cat", 0.5, 0.0, 0.0, 4.0, 4.0, 16]]
    assert len(segment.detection_rows(inst, ["dog", "cat"], 0.0)) == 3
    drawn = segment.draw_detections(torch.zeros(10, 10, 3, dtype=torch.uint8).numpy(), inst, ["dog", "cat"], 0.2)
    assert drawn.shape == (512, 512, 3) and drawn.any()  # upscaled to 512 px, something drawn
