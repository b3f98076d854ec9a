"""What ``tools/train_net.py`` does, kept in the package so that tools stay thin."""
from __future__ import annotations

import argparse
import logging
import os
from typing import Any, Dict

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.engine import default_argument_parser, default_setup, launch
from detectron2.utils import comm

from alpseg.config import load_config
from alpseg.utils.io import write_json

from .trainer import AlpsegTrainer

logger = logging.getLogger("alpseg")

__all__ = ["argument_parser", "setup_cfg", "train_or_evaluate", "main"]


def argument_parser(description: str = "alpseg training / evaluation") -> argparse.ArgumentParser:
    """detectron2's standard parser (--config-file, --resume, --eval-only, --num-gpus, --num-machines,
    --machine-rank, --dist-url, trailing KEY VALUE overrides)."""
    parser = default_argument_parser()
    parser.description = description
    return parser


def setup_cfg(args: argparse.Namespace):
    """Load the config, pick the device, freeze, and run detectron2's default_setup (logging, seed,
    a copy of the config in OUTPUT_DIR)."""
    if not args.config_file:
        raise SystemExit("--config-file is required")
    cfg = load_config(args.config_file, args.opts)
    if args.num_gpus == 0 or not torch.cuda.is_available():
        if cfg.MODEL.DEVICE != "cpu":
            logging.getLogger(__name__).warning("no GPU requested or available: using MODEL.DEVICE cpu")
        cfg.MODEL.DEVICE = "cpu"
    cfg.freeze()
    default_setup(cfg, args)
    return cfg


def write_results(results: Dict[str, Any], output_dir: str) -> None:
    """Save the final evaluation results as OUTPUT_DIR/results.json (atomically, main process)."""
    if not comm.is_main_process() or not results:
        return
    path = os.path.join(output_dir, "results.json")
    write_json(path, results)  # strict JSON: a NaN AP (class without ground truth) is written as null
    logger.info("results written to %s", path)


def train_or_evaluate(args: argparse.Namespace) -> Dict[str, Any]:
    cfg = setup_cfg(args)
    if args.eval_only:
        model = AlpsegTrainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        results = AlpsegTrainer.test(cfg, model)
    else:
        trainer = AlpsegTrainer(cfg)
        trainer.resume_or_load(resume=args.resume)
        results = trainer.train()
        # DefaultTrainer returns results only when TEST.EXPECTED_RESULTS is set; its EvalHook still
        # evaluates at the end of training and keeps them here.
        results = results or getattr(trainer, "_last_eval_results", None)
    write_results(results, cfg.OUTPUT_DIR)
    return results


def main(argv=None) -> None:
    args = argument_parser().parse_args(argv)
    import alpseg  # noqa: F401  (registers models and datasets in every launched process)

    num_gpus = args.num_gpus if torch.cuda.is_available() else 0  # 0 = run in this process, on CPU
    launch(train_or_evaluate, num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank, dist_url=args.dist_url,
           args=(args,))
