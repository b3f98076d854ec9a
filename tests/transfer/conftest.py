"""Fixtures of the transfer tests: a seeded torchvision ResNet-50 and miniature dataset trees."""
from __future__ import annotations

import os

import pytest
import torch


def seeded_resnet50(seed: int = 0) -> torch.nn.Module:
    """Random ResNet-50 whose BatchNorm statistics and affine terms are random too.

    Fresh BN layers are identities (mean 0, var 1, weight 1, bias 0); randomising them makes a
    swapped or dropped BN tensor change the output, so an equality test can catch it.
    """
    import torchvision

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = torchvision.models.resnet50(weights=None)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) * 0.5 + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
    return model.eval()


@pytest.fixture(scope="session")
def resnet50_tv():
    return seeded_resnet50(0)


@pytest.fixture(scope="session")
def backbone_files(tmp_path_factory, resnet50_tv):
    """The same weights in three layouts people have: plain, MoCo and VirTex."""
    root = tmp_path_factory.mktemp("ckpts")
    sd = resnet50_tv.state_dict()
    paths = {}
    paths["plain"] = str(root / "plain.pth")
    torch.save(sd, paths["plain"])
    moco = {f"module.encoder_q.{k}": v for k, v in sd.items() if not k.startswith("fc.")}
    moco.update({"module.encoder_q.fc.0.weight": torch.zeros(2048, 2048), "module.encoder_q.fc.0.bias": torch.zeros(2048),
                 "module.encoder_q.fc.2.weight": torch.zeros(128, 2048), "module.encoder_q.fc.2.bias": torch.zeros(128)})
    moco.update({f"module.encoder_k.{k}": v + 1 for k, v in sd.items() if k.startswith("layer1.0.")})
    moco.update({"module.queue": torch.zeros(128, 16), "module.queue_ptr": torch.zeros(1, dtype=torch.long)})
    paths["moco"] = str(root / "moco.pth.tar")
    torch.save({"epoch": 200, "arch": "resnet50", "state_dict": moco, "optimizer": {"state": {}, "param_groups": []}},
               paths["moco"])
    virtex = {f"visual.cnn.{k}": v for k, v in sd.items()}
    virtex.update({"textual.embedding.words.weight": torch.zeros(10, 4), "textual.output.weight": torch.zeros(10, 4)})
    paths["virtex"] = str(root / "virtex.pth")
    torch.save({"model": virtex, "optimizer": {"state": {}, "param_groups": []}, "iteration": 500000}, paths["virtex"])
    return paths


@pytest.fixture(scope="session")
def second_backbone(tmp_path_factory):
    """Another seeded ResNet-50 (seed 1), torchvision layout: a different backbone fingerprint."""
    path = str(tmp_path_factory.mktemp("b2") / "other.pth")
    torch.save(seeded_resnet50(1).state_dict(), path)
    return path


@pytest.fixture(scope="session")
def mini_root(tmp_path_factory):
    """A datasets root with the miniature VOC2007 + VOC2012, ImageFolder and iNat trees."""
    from alpseg.data.miniature.imagefolder import write_miniature_imagefolder, write_miniature_inat
    from alpseg.data.miniature.voc import write_miniature_voc

    root = tmp_path_factory.mktemp("datasets")
    write_miniature_voc(str(root), seed=0)
    write_miniature_imagefolder(os.path.join(str(root), "imagenet"), seed=0)
    write_miniature_inat(os.path.join(str(root), "inat2018"), seed=0)
    return str(root)


@pytest.fixture(scope="session")
def tv_weights(resnet50_tv, tmp_path_factory):
    """The seeded ResNet-50 converted to detectron2 names."""
    from alpseg.transfer.checkpoints import convert_checkpoint

    path = str(tmp_path_factory.mktemp("w") / "tv.pth")
    torch.save(resnet50_tv.state_dict(), path)
    return convert_checkpoint(path)[0]


@pytest.fixture(scope="session")
def coco_world(tmp_path_factory):
    """Miniature COCO (the lead's world generator), LVIS made from it, and a small VOC07+12."""
    from alpseg.data.miniature import MiniatureSizes, write_miniature_world
    from alpseg.data.miniature.lvis import write_miniature_lvis
    from alpseg.data.miniature.voc import write_miniature_voc

    root = str(tmp_path_factory.mktemp("world"))
    write_miniature_world(root, sizes=MiniatureSizes(coco_train=4, coco_val=2, oid_train=2, oid_val=2, oid_test=2,
                                                     image_size=64, voc=False))
    write_miniature_lvis(root)
    write_miniature_voc(root, images_per_split=20, image_size=64)
    return root
