"""What ``tools/train_net.py`` does, kept in the package so that tools stay thin.

Processes: ``--num-gpus N`` starts ``N`` processes per machine. On GPUs that is one per GPU (an error
when fewer GPUs exist); with ``MODEL.DEVICE cpu`` or on a machine without CUDA it starts ``N`` CPU
processes joined over gloo (a logged notice says so; ``--num-gpus 0`` or 1 runs in this process).
Never fewer processes than asked. Under several CPU processes, ``SyncBN`` layers (torch's SyncBatchNorm
needs CUDA) become :class:`~alpseg.engine.trainer.GlooSyncBatchNorm`, which all-reduces the statistics
with gloo (same parameter names, so checkpoints are interchangeable), with a logged notice.

Errors that a user fixes (an unknown config key, a missing dataset root, an unreadable or unfitting
checkpoint, a phrase bank lacking training phrases, a missing file) are printed as one line and the
tool exits with status 2, also when they happen in a launched process.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import timedelta
from typing import Any, Dict

import torch
from detectron2.engine import default_argument_parser, default_setup, launch
from detectron2.utils import comm

from alpseg.config import ConfigKeyError, load_config
from alpseg.utils.cli import add_common_arguments
from alpseg.utils.io import write_json
from alpseg.utils.progress import disable_progress

from .checkpoint import AlpsegCheckpointer, CheckpointError
from .trainer import AlpsegTrainer, PhraseCoverageError

logger = logging.getLogger(__name__)

__all__ = ["argument_parser", "setup_cfg", "train_or_evaluate", "main", "USER_ERRORS", "num_processes"]

# exceptions whose message tells the user what to fix: printed as one line, exit status 2
USER_ERRORS = (ConfigKeyError, CheckpointError, PhraseCoverageError, FileNotFoundError)
USER_ERROR_EXIT = 2
DIST_TIMEOUT = timedelta(minutes=30)


def argument_parser(description: str = "alpseg training / evaluation") -> argparse.ArgumentParser:
    """detectron2's standard parser (--config-file, --resume, --eval-only, --num-gpus, --num-machines,
    --machine-rank, --dist-url, trailing KEY VALUE overrides) plus SLURM submission (submitit)."""
    parser = default_argument_parser()
    parser.description = description
    add_common_arguments(parser)  # --no-progress, as every alpseg tool
    slurm = parser.add_argument_group("SLURM (submitit; see docs/training.md)")
    slurm.add_argument("--slurm", action="store_true", help="submit this run as a SLURM job instead of running it")
    slurm.add_argument("--nodes", type=int, default=1, help="SLURM nodes (with --slurm)")
    slurm.add_argument("--gpus-per-node", type=int, default=8, help="GPUs (= processes) per node (with --slurm)")
    slurm.add_argument("--partition", default="", help="SLURM partition (with --slurm)")
    slurm.add_argument("--timeout-min", type=int, default=72 * 60, help="job time limit in minutes (with --slurm)")
    slurm.add_argument("--job-dir", default="", help="submitit logs and job files (default OUTPUT_DIR/submitit)")
    slurm.add_argument("--cluster", default="slurm", choices=("slurm", "local", "debug"),
                       help="submitit executor: slurm, or local / debug to try a submission on this machine")
    slurm.add_argument("--wait", action="store_true", help="wait for the job; exit non-zero if it failed (with --slurm)")
    return parser


def num_processes(args: argparse.Namespace, device: str) -> int:
    """Processes this machine starts for ``args`` (at least 1); an error when GPUs are missing."""
    asked = max(int(args.num_gpus), 0)
    if device != "cpu" and torch.cuda.is_available() and asked > torch.cuda.device_count():
        raise SystemExit(f"--num-gpus {asked}: this machine has {torch.cuda.device_count()} GPU(s); ask for fewer, "
                         "or set MODEL.DEVICE cpu to run CPU processes")
    return max(asked, 1)


def _runs_on_cpu(args: argparse.Namespace, cfg) -> bool:
    return args.num_gpus == 0 or cfg.MODEL.DEVICE == "cpu" or not torch.cuda.is_available()


def setup_cfg(args: argparse.Namespace):
    """Load the config, pick the device, freeze, and run detectron2's default_setup (logging, seed,
    a copy of the config in OUTPUT_DIR)."""
    if not args.config_file:
        raise SystemExit("--config-file is required")
    cfg = load_config(args.config_file, args.opts)
    if _runs_on_cpu(args, cfg):
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
        AlpsegCheckpointer.from_config(cfg, model).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
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


def _report_user_errors(func, *args):
    """Run ``func``; a user error becomes one line on stderr and exit status 2."""
    try:
        return func(*args)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(USER_ERROR_EXIT) from None


def _cpu_worker(local_rank: int, func, world_size: int, per_machine: int, machine_rank: int, dist_url: str,
                args: tuple) -> None:
    """One CPU process of a gloo group (detectron2's launch worker picks NCCL whenever CUDA exists)."""
    import torch.distributed as dist

    dist.init_process_group(backend="gloo", init_method=dist_url, world_size=world_size,
                            rank=machine_rank * per_machine + local_rank, timeout=DIST_TIMEOUT)
    comm.create_local_process_group(per_machine)
    comm.synchronize()
    _report_user_errors(func, *args)


def launch_processes(func, args: argparse.Namespace, processes: int, on_cpu: bool) -> None:
    """Run ``func(args)`` in ``processes`` processes per machine (this one when the world is 1)."""
    world = processes * args.num_machines
    if world == 1:
        _report_user_errors(func, args)
        return
    if not on_cpu:
        launch(_report_user_errors, processes, num_machines=args.num_machines, machine_rank=args.machine_rank,
               dist_url=args.dist_url, args=(func, args))
        return
    import torch.multiprocessing as mp
    from detectron2.engine.launch import _find_free_port

    dist_url = args.dist_url
    if dist_url == "auto":
        if args.num_machines != 1:
            raise SystemExit("--dist-url auto works on one machine only; give tcp://HOST:PORT")
        dist_url = f"tcp://127.0.0.1:{_find_free_port()}"
    logger.warning("starting %d CPU processes on this machine (world size %d, gloo)", processes, world)
    mp.start_processes(_cpu_worker, nprocs=processes, daemon=False,
                       args=(func, world, processes, args.machine_rank, dist_url, (args,)))


def main(argv=None) -> int:
    """``tools/train_net.py``: 0 when done; failures exit through ``SystemExit`` with a non-zero code."""
    args = argument_parser().parse_args(argv)
    if args.no_progress:
        disable_progress()  # an environment variable: the launched processes inherit it
    import alpseg  # noqa: F401  (registers models and datasets in every launched process)

    try:
        cfg = load_config(args.config_file, args.opts) if args.config_file else None
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(USER_ERROR_EXIT) from None
    if cfg is None:
        raise SystemExit("--config-file is required")
    on_cpu = _runs_on_cpu(args, cfg)
    if args.slurm:
        from .submit import submit_training

        submit_training(args, cfg)
        return 0
    processes = num_processes(args, "cpu" if on_cpu else "cuda")
    import torch.multiprocessing as mp

    try:
        launch_processes(train_or_evaluate, args, processes, on_cpu)
    except mp.ProcessExitedException as e:  # a launched process printed its error and exited
        raise SystemExit(e.exit_code if e.exit_code and e.exit_code > 0 else 1) from None
    return 0
