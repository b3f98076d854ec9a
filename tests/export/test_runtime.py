"""alpseg.export.postprocess: the graph outputs of a resized image -> Instances at the image's size."""
import torch

from alpseg.export import postprocess


def test_postprocess_scales_to_the_original_size_and_leaves_its_inputs_alone():
    boxes = torch.tensor([[10.0, 20.0, 50.0, 60.0], [0.0, 0.0, 0.0, 0.0]])
    masks = torch.zeros((2, 1, 4, 4))
    masks[0, 0, 1:3, 1:3] = 0.9
    outputs = [boxes, torch.tensor([0.9, 0.8]), torch.tensor([3, 1]), masks]
    before = [t.clone() for t in outputs]
    # resized 96x128 -> original 192x256: every coordinate doubles; the empty box is dropped
    inst = postprocess(outputs, (96, 128), (192, 256))
    assert torch.equal(inst.pred_boxes.tensor, torch.tensor([[20.0, 40.0, 100.0, 120.0]]))
    assert inst.image_size == (192, 256) and inst.pred_classes.tolist() == [3]
    assert inst.pred_masks.shape == (1, 192, 256) and inst.pred_masks.dtype == torch.bool
    assert all(torch.equal(a, b) for a, b in zip(outputs, before))
    # mask_threshold: nothing of the mask reaches 0.95
    assert not postprocess(outputs, (96, 128), (192, 256), mask_threshold=0.95).pred_masks.any()
