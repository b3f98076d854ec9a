"""Cluster jobs through submitit (the FAIR convention): training, curation shards, any command.

* :func:`submit_training` (``tools/train_net.py --slurm ...``): one SLURM job of ``--nodes`` nodes x
  ``--gpus-per-node`` tasks; every task is one training process whose rank, world size and master
  address come from submitit's job environment. On preemption or time-out the job requeues itself
  with ``--resume`` (exact resume, see :mod:`alpseg.engine.trainer`).
* :func:`submit_array` (``tools/submit.py curate ...``): a job array of ``N`` one-task jobs, job ``i``
  running a command with ``--shard i/N`` appended (ALP curation shards; any sharded tool).
* ``--cluster local`` runs the same jobs as local processes (submitit's ``LocalExecutor``) and
  ``debug`` in this process: how the tests try submissions without a cluster.
"""
from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
from typing import List, Optional, Sequence

__all__ = ["make_executor", "TrainingJob", "submit_training", "ShardCommand", "submit_array", "shard_path"]


def _submitit():
    try:
        import submitit
    except ImportError:
        raise SystemExit("cluster submission needs submitit: pip install 'alpseg[cluster]' (or pip install submitit)")
    return submitit


def make_executor(cluster: str, folder: str, *, nodes: int = 1, tasks_per_node: int = 1, gpus_per_node: int = 0,
                  partition: str = "", timeout_min: int = 60, name: str = "alpseg", cpus_per_task: int = 10):
    submitit = _submitit()
    executor = submitit.AutoExecutor(folder=folder, cluster=None if cluster == "slurm" else cluster)
    params = dict(name=name, nodes=nodes, tasks_per_node=tasks_per_node, timeout_min=timeout_min)
    if cluster == "slurm":
        params.update(gpus_per_node=gpus_per_node, cpus_per_task=cpus_per_task,
                      slurm_partition=partition or None, slurm_signal_delay_s=120)
    executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return executor


class TrainingJob:
    """The callable every task of a training job runs (picklable; requeues itself with --resume)."""

    def __init__(self, args: argparse.Namespace, on_cpu: bool, port: int):
        self.args = args
        self.on_cpu = on_cpu
        self.port = int(port)  # of the rank-0 task's host, where the process group meets

    def __call__(self):
        import torch.distributed as dist
        from detectron2.utils import comm

        from .launch import DIST_TIMEOUT, _report_user_errors, train_or_evaluate

        env = _submitit().JobEnvironment()
        args = copy.copy(self.args)
        args.slurm = False
        if env.num_tasks > 1:
            host = env.hostnames[0] if args.cluster == "slurm" and env.hostnames else "127.0.0.1"
            dist_url = f"tcp://{host}:{self.port}"
            use_cuda = not self.on_cpu
            if use_cuda:
                import torch

                torch.cuda.set_device(env.local_rank)
            dist.init_process_group(backend="nccl" if use_cuda else "gloo", init_method=dist_url,
                                    world_size=env.num_tasks, rank=env.global_rank, timeout=DIST_TIMEOUT)
            comm.create_local_process_group(env.num_tasks // env.num_nodes)
            comm.synchronize()
        return _report_user_errors(train_or_evaluate, args)

    def checkpoint(self):
        """submitit calls this on preemption / time-out: resubmit, resuming from the last checkpoint."""
        args = copy.copy(self.args)
        args.resume = True
        return _submitit().helpers.DelayedSubmission(TrainingJob(args, self.on_cpu, self.port))


def submit_training(args: argparse.Namespace, cfg, wait: bool = False):
    """Submit ``tools/train_net.py``'s run (see the module docstring); returns the submitit job."""
    from detectron2.engine.launch import _find_free_port

    folder = args.job_dir or os.path.join(cfg.OUTPUT_DIR, "submitit")
    on_cpu = args.cluster != "slurm" and (cfg.MODEL.DEVICE == "cpu" or args.num_gpus == 0)
    per_node = max(args.gpus_per_node, 1)
    executor = make_executor(args.cluster, folder, nodes=args.nodes, tasks_per_node=per_node,
                             gpus_per_node=0 if on_cpu else per_node, partition=args.partition,
                             timeout_min=args.timeout_min, name=os.path.basename(args.config_file))
    job = executor.submit(TrainingJob(args, on_cpu, _find_free_port()))
    print(f"submitted job {job.job_id}: {args.nodes} node(s) x {per_node} process(es); logs in {folder}", flush=True)
    if wait or args.wait:
        job.results()  # every task's; raises the first failure
        print(f"job {job.job_id} finished", flush=True)
    return job


def shard_path(path: str, index: int, count: int) -> str:
    """``out/ALPS.json`` -> ``out/ALPS.shard-3-of-16.json``: where shard ``index`` writes."""
    stem, ext = os.path.splitext(path)
    return f"{stem}.shard-{index}-of-{count}{ext}"


class ShardCommand:
    """Run ``command + ["--shard", f"{i}/{n}"]``, with the value of ``--output`` (if any) made
    per-shard (:func:`shard_path`); fails (non-zero exit) as the command fails."""

    def __init__(self, command: Sequence[str], num_shards: int):
        self.command = list(command)
        self.num_shards = int(num_shards)

    def shard_command(self, index: int) -> List[str]:
        cmd = list(self.command)
        if "--output" in cmd[:-1]:
            at = cmd.index("--output") + 1
            cmd[at] = shard_path(cmd[at], index, self.num_shards)
        return cmd + ["--shard", f"{index}/{self.num_shards}"]

    def __call__(self, index: int) -> int:
        cmd = self.shard_command(index)
        proc = subprocess.run(cmd)
        if proc.returncode:
            raise RuntimeError(f"shard {index}/{self.num_shards} failed (exit {proc.returncode}): {' '.join(cmd)}")
        return index


def submit_array(command: Sequence[str], num_shards: int, *, cluster: str, folder: str, partition: str = "",
                 timeout_min: int = 60, gpus_per_node: int = 0, name: str = "alpseg-shards") -> List:
    """Submit ``num_shards`` jobs (a SLURM job array), job ``i`` running ``command --shard i/N``."""
    if num_shards < 1:
        raise SystemExit(f"--shards must be at least 1, got {num_shards}")
    executor = make_executor(cluster, folder, partition=partition, timeout_min=timeout_min,
                             gpus_per_node=gpus_per_node, name=name)
    if cluster == "slurm":
        executor.update_parameters(slurm_array_parallelism=num_shards)
    jobs = executor.map_array(ShardCommand(command, num_shards), list(range(num_shards)))
    print(f"submitted {len(jobs)} shard job(s) ({', '.join(j.job_id for j in jobs)}); logs in {folder}", flush=True)
    return jobs


def python_command(script: str, argv: Sequence[str], python: Optional[str] = None) -> List[str]:
    return [python or sys.executable, script] + list(argv)
