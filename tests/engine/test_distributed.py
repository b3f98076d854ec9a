"""Multi-process training on CPU (gloo) through the real tools/train_net.py, and exact resume.

* 2 processes x 2 images train like 1 process x 4 images (losses and weights to float tolerance),
  for FCOS-MO (alternating COCO masks / ALPs) and Mask R-CNN* (image-label loss included);
* a run killed after a checkpoint and resumed ends bit-identical to the uninterrupted run, with the
  same logged losses: FCOS-MO alternating in 2 processes, a single-dataset Mask R-CNN* in 1;
* SyncBN's CPU stand-in and the batch-wide (global) phrase vocabulary, in 2 gloo processes.

Per-rank augmentation draws are checked on the loader itself (tests/data/test_samplers.py).
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN_NET = os.path.join(REPO, "tools", "train_net.py")
LOSS_KEYS = ("total_loss", "loss_cls", "loss_box_reg", "loss_centerness", "loss_image_label", "loss_rpn_cls",
             "loss_rpn_loc", "loss_mask")


def _command(config, procs, out, opts, resume=False):
    return [sys.executable, TRAIN_NET, "--config-file", os.path.join(REPO, "configs", config),
            "--num-gpus", str(procs), "--dist-url", "auto"] + (["--resume"] if resume else []) + list(opts) + [
            "OUTPUT_DIR", out]


def _env(root):
    return dict(os.environ, DETECTRON2_DATASETS=root, OMP_NUM_THREADS="1")


def _train(config, procs, out, opts, root, resume=False):
    cmd = _command(config, procs, out, opts, resume)
    proc = subprocess.run(cmd, cwd=REPO, env=_env(root), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout + proc.stderr


def _train_killed_after_first_checkpoint(config, procs, out, opts, root):
    """Start a run, SIGKILL its whole process group once a periodic checkpoint exists."""
    proc = subprocess.Popen(_command(config, procs, out, opts), cwd=REPO, env=_env(root), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 900
    try:
        while not os.path.isfile(os.path.join(out, "last_checkpoint")):
            assert proc.poll() is None, "the run ended before writing a checkpoint"
            assert time.time() < deadline
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not os.path.isfile(os.path.join(out, "model_final.pth")), "killed too late: the run had finished"


def _weights(out):
    return torch.load(os.path.join(out, "model_final.pth"), map_location="cpu", weights_only=False)["model"]


def _last_losses(out):
    """The loss values of the last training line of metrics.json."""
    lines = [json.loads(x) for x in open(os.path.join(out, "metrics.json")) if '"total_loss"' in x]
    return {k: v for k, v in lines[-1].items() if k in LOSS_KEYS or k == "iteration"}


def _assert_close_runs(one, two, rtol_loss=1e-4, atol_weight=5e-5, skip=()):
    """Same logged losses and final weights to float tolerance (measured: losses within 1e-6
    relative, weights of magnitude ~0.05 within 2e-5 after 4 iterations at LR 0.01)."""
    a, b = _last_losses(one), _last_losses(two)
    assert a.keys() == b.keys() and a["iteration"] == b["iteration"]
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=rtol_loss, abs=1e-7), (k, a[k], b[k])
    wa, wb = _weights(one), _weights(two)
    assert wa.keys() == wb.keys()
    worst = max(((wa[k].double() - wb[k].double()).abs().max().item(), k) for k in wa
                if wa[k].is_floating_point() and not any(k.startswith(p) and k.endswith(q) for p, q in skip))
    assert worst[0] < atol_weight, worst


def _assert_identical_runs(one, two):
    wa, wb = _weights(one), _weights(two)
    assert wa.keys() == wb.keys()
    differ = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not differ, f"{len(differ)} of {len(wa)} tensors differ, e.g. {differ[:3]}"
    assert _last_losses(one) == _last_losses(two)


def _common(bank, tiny_opts):
    return tiny_opts + [
        "MODEL.OPEN_VOCAB.EMBEDDINGS", bank, "MODEL.OPEN_VOCAB.PRETRAINED", "none", "DATASETS.TEST", "()",
        "MODEL.ROI_MASK_HEAD.HOURGLASS_WIDTH", "32", "MODEL.ROI_MASK_HEAD.HOURGLASS_DEPTH", "10",
        "INPUT.LSJ.IMAGE_SIZE", "96", "SOLVER.IMS_PER_BATCH", "4", "SOLVER.BASE_LR", "0.01", "SOLVER.WARMUP_ITERS", "0",
        "SEED", "3",
        # batch-independent norms in backbone and FPN; the FCOS-MO towers keep SyncBN (per level), which
        # becomes GlooSyncBatchNorm in 2 CPU processes and BatchNorm over all 4 images in one
        "MODEL.RESNETS.NORM", "FrozenBN", "MODEL.FPN.NORM", "GN",
    ]


FCOS_OPTS = [
    # The mask loss is a mean over each process's masked instances (as in detectron2's Mask R-CNN),
    # which equals the global mean only when processes hold equally many: weight 0 for this comparison.
    "MODEL.FCOS_MO.MASK_LOSS_WEIGHT", "0.0", "SOLVER.MAX_ITER", "4", "SOLVER.CHECKPOINT_PERIOD", "2",
]


@pytest.mark.timeout(2400)
def test_fcos_mo_two_processes_match_one_and_resume_exactly(phrase_bank, tiny_opts, tmp_path):
    opts = _common(phrase_bank, tiny_opts) + FCOS_OPTS
    root = os.environ["DETECTRON2_DATASETS"]
    one, two, killed = (str(tmp_path / n) for n in ("one", "two", "killed"))
    _train("fcos_mo_coco_oid.yaml", 1, one, opts, root)
    log = _train("fcos_mo_coco_oid.yaml", 2, two, opts, root)
    assert "starting 2 CPU processes" in log and "replaced by GlooSyncBatchNorm" in log
    # iterations 0-3: COCO, ALPs, COCO, ALPs. The hourglass keeps detectron2's NaiveSyncBatchNorm, whose
    # running variance is the biased one under several processes (BatchNorm's in one): not compared.
    _assert_close_runs(one, two, skip=[("mask_head.", "running_var")])
    _train_killed_after_first_checkpoint("fcos_mo_coco_oid.yaml", 2, killed, opts, root)
    log = _train("fcos_mo_coco_oid.yaml", 2, killed, opts, root, resume=True)
    assert "Starting training from iteration 2" in log
    _assert_identical_runs(two, killed)


@pytest.mark.timeout(1200)
def test_mask_rcnn_star_two_processes_match_one(phrase_bank, tiny_opts, tmp_path):
    opts = _common(phrase_bank, tiny_opts) + [
        "SOLVER.MAX_ITER", "2", "MODEL.MASK_ON", "False",
        # take every anchor / proposal instead of a random sample, so that both runs train on the same
        # ones; detectron2 normalises these losses per image, so 2 x 2 images equal 1 x 4
        "MODEL.RPN.BATCH_SIZE_PER_IMAGE", "100000", "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "10000",
        "MODEL.ROI_HEADS.POSITIVE_FRACTION", "1.0", "MODEL.RPN.POST_NMS_TOPK_TRAIN", "20",
        "MODEL.ROI_HEADS.PROPOSAL_APPEND_GT", "False",
        # batch-independent box-head norm too: detectron2's naiveSyncBN_N (the shipped head's) keeps a
        # biased running variance across processes but BatchNorm's unbiased one in a single process
        "MODEL.ROI_BOX_HEAD.NORM", "GN",
    ]
    root = os.environ["DETECTRON2_DATASETS"]
    _train("mask_rcnn_star_coco_oid_noboxes.yaml", 1, str(tmp_path / "one"), opts, root)
    _train("mask_rcnn_star_coco_oid_noboxes.yaml", 2, str(tmp_path / "two"), opts, root)
    _assert_close_runs(str(tmp_path / "one"), str(tmp_path / "two"))
    assert "loss_image_label" in _last_losses(str(tmp_path / "two"))


@pytest.mark.timeout(1200)
def test_single_dataset_config_resumes_bit_identically(phrase_bank, tiny_opts, tmp_path):
    """Mask R-CNN* on COCO alone (ALTERNATE_DATASETS False), with its random RPN / RoI sampling."""
    opts = tiny_opts + ["MODEL.OPEN_VOCAB.EMBEDDINGS", phrase_bank, "MODEL.OPEN_VOCAB.PRETRAINED", "none",
                        "DATASETS.TEST", "()", "MODEL.ROI_MASK_HEAD.HOURGLASS_WIDTH", "32",
                        "MODEL.ROI_MASK_HEAD.HOURGLASS_DEPTH", "10", "INPUT.LSJ.IMAGE_SIZE", "96",
                        "SOLVER.MAX_ITER", "6", "SOLVER.CHECKPOINT_PERIOD", "2", "SOLVER.BASE_LR", "0.01",
                        "SOLVER.WARMUP_ITERS", "0", "SEED", "5", "MODEL.RPN.POST_NMS_TOPK_TRAIN", "64",
                        "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "32"]
    root = os.environ["DETECTRON2_DATASETS"]
    full, killed = str(tmp_path / "full"), str(tmp_path / "killed")
    _train("mask_rcnn_star_coco_oid_openvocab.yaml", 0, full, opts, root)
    _train_killed_after_first_checkpoint("mask_rcnn_star_coco_oid_openvocab.yaml", 0, killed, opts, root)
    log = _train("mask_rcnn_star_coco_oid_openvocab.yaml", 0, killed, opts, root, resume=True)
    assert "Starting training from iteration 2" in log or "Starting training from iteration 4" in log
    _assert_identical_runs(full, killed)


# ------------------------------------------------------------------------------ in-process, 2 ranks
def _spawn(fn, *args):
    """Run ``fn(rank, port, queue, *args)`` in 2 gloo processes; returns what each put (by rank)."""
    from detectron2.engine.launch import _find_free_port

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _find_free_port()
    procs = [ctx.Process(target=fn, args=(r, port, queue) + args) for r in range(2)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=600) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return results


def _init(rank, port):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", world_size=2, rank=rank)


def _bn_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.SyncBatchNorm(8), torch.nn.ReLU(),
                               torch.nn.Conv2d(8, 4, 3), torch.nn.SyncBatchNorm(4, affine=False))


def _bn_data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(4, 3, 10, 10, generator=g) * 3 + 5, torch.randn(4, 4, 6, 6, generator=g)


def _bn_worker(rank, port, queue):
    _init(rank, port)
    from alpseg.engine.trainer import GlooSyncBatchNorm, sync_bn_for_cpu

    net = _bn_net()
    assert sync_bn_for_cpu(net) == 2 and isinstance(net[4], GlooSyncBatchNorm)
    ddp = torch.nn.parallel.DistributedDataParallel(net)
    x, t = _bn_data()
    # this rank's half of the batch loss, x 2: DDP averages the two ranks' gradients
    (((ddp(x[2 * rank: 2 * rank + 2]) - t[2 * rank: 2 * rank + 2]) ** 2).sum() / 4 * 2).backward()
    state = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
    grads = {k: p.grad.numpy().copy() for k, p in net.named_parameters()}
    queue.put((rank, (state, grads)))


def test_gloo_sync_batch_norm_equals_batch_norm_over_the_whole_batch():
    net = _bn_net()
    x, t = _bn_data()
    (((net(x) - t) ** 2).sum() / 4).backward()
    state, grads = _spawn(_bn_worker)[0]
    assert set(state) == set(net.state_dict())  # same names: checkpoints interchangeable
    for k, p in net.named_parameters():
        if k == "3.bias":  # a bias before batch norm has no gradient: only float noise
            continue
        np.testing.assert_allclose(grads[k], p.grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=k)
    for k, v in net.state_dict().items():  # running mean and (unbiased) variance as BatchNorm's
        np.testing.assert_allclose(state[k], v.numpy(), rtol=1e-5, atol=1e-6, err_msg=k)


class _RecordingBank:
    def __init__(self, bank):
        self.bank, self.calls = bank, []

    def lookup(self, phrases):
        self.calls.append(list(phrases))
        return self.bank.lookup(phrases)


RANK_PHRASES = {0: (["cat", "dog"], ["bus"]), 1: (["horse", "sheep"], ["train"])}


def _vocab_worker(rank, port, queue, config, bank, opts):
    _init(rank, port)
    from detectron2.structures import Boxes, Instances
    from detectron2.utils.events import EventStorage

    from alpseg.config import load_config
    from alpseg.engine import AlpsegTrainer
    from alpseg.text.bank import PhraseBank

    boxes, image_labels = RANK_PHRASES[rank]
    out = {}
    for mode in ("global", "local"):
        cfg = load_config(os.path.join(REPO, "configs", config), opts + ["MODEL.OPEN_VOCAB.NEGATIVES", mode])
        torch.manual_seed(0)  # the same weights and RPN / RoI samples in both modes: only the vocabulary differs
        model = AlpsegTrainer.build_model(cfg)  # SyncBN -> GlooSyncBatchNorm (2 CPU processes)
        model.phrase_bank = recorder = _RecordingBank(PhraseBank.load(bank))
        model.train()
        inst = Instances((64, 64), gt_boxes=Boxes(torch.tensor([[4.0, 4.0, 40.0, 36.0], [20.0, 16.0, 60.0, 60.0]])),
                         gt_phrases=list(boxes), gt_is_alp=torch.tensor([False, False]),
                         gt_has_mask=torch.tensor([False, False]), gt_classes=torch.tensor([0, 1]))
        alp = Instances((64, 64), gt_boxes=Boxes(torch.tensor([[8.0, 8.0, 50.0, 50.0]])), gt_phrases=[image_labels[0]],
                        gt_is_alp=torch.tensor([True]), gt_has_mask=torch.tensor([False]), gt_classes=torch.tensor([-1]))
        torch.manual_seed(0)
        image = torch.rand(3, 64, 64) * 255
        batch = [{"image": image, "instances": inst, "height": 64, "width": 64},
                 {"image": image.flip(-1), "instances": alp, "height": 64, "width": 64,
                  "image_phrases": [image_labels[0]]}]
        with EventStorage(0):
            losses = model(batch)
        out[mode] = (recorder.calls, {k: float(v) for k, v in losses.items()})
    queue.put((rank, out))


@pytest.mark.timeout(900)
@pytest.mark.parametrize("config, loss", [("fcos_mo_coco_oid.yaml", "loss_cls"),
                                          ("mask_rcnn_star_coco_oid_noboxes.yaml", "loss_image_label")])
def test_global_vocabulary_gives_every_rank_all_phrases_as_negatives(phrase_bank, tiny_opts, config, loss):
    opts = tiny_opts + ["MODEL.OPEN_VOCAB.EMBEDDINGS", phrase_bank, "MODEL.OPEN_VOCAB.PRETRAINED", "none",
                        "MODEL.MASK_ON", "False", "MODEL.RESNETS.NORM", "FrozenBN", "MODEL.FPN.NORM", "GN"]
    got = _spawn(_vocab_worker, config, phrase_bank, opts)
    # each rank's phrases: its boxes', then its ALP image's (FCOS-MO: an ALP box; Mask R-CNN*
    # "image_labels": the image's label, which only the image-label loss uses)
    own = {r: RANK_PHRASES[r][0] + RANK_PHRASES[r][1] for r in (0, 1)}
    everything = own[0] + own[1]
    for rank in (0, 1):
        calls_global, losses_global = got[rank]["global"]
        calls_local, losses_local = got[rank]["local"]
        assert calls_global == [everything]  # the same batch vocabulary on both ranks, rank order
        assert calls_local == [own[rank]]
        # the other rank's phrases are extra negatives: the contrastive loss differs (grows)
        assert losses_global[loss] > losses_local[loss] + 1e-4, (losses_global, losses_local)
