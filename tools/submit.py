#!/usr/bin/env python
"""Submit alpseg work to a SLURM cluster through submitit (or try it locally with --cluster local).

    # ALP curation as a job array of 16 shards (each runs tools/curate_alps.py ... --shard i/16 and
    # writes A.shard-i-of-16.json); with --wait the shards are merged into A.json at the end
    python tools/submit.py curate --shards 16 --partition P --wait -- --input LN.jsonl --image-info I.json --output A.json
    # any sharded command, e.g. a transfer-suite task list split over jobs
    python tools/submit.py array --shards 4 -- python tools/eval_transfer.py --backbone B.pth
    # training: the same as tools/train_net.py --slurm
    python tools/submit.py train --nodes 2 --gpus-per-node 8 --partition P -- --config-file CFG

Exits non-zero when a submitted (awaited) job fails, or when nothing was submitted.
"""
import argparse
import os
import subprocess
import sys

from alpseg.engine.submit import python_command, shard_path, submit_array
from alpseg.utils.cli import add_common_arguments, setup_tool

TOOLS = os.path.dirname(os.path.abspath(__file__))


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("curate", "array", "train"), help="curation shards, any sharded command, or training")
    p.add_argument("--shards", type=int, default=1, help="jobs in the array (curate / array)")
    p.add_argument("--cluster", default="slurm", choices=("slurm", "local", "debug"), help="submitit executor")
    p.add_argument("--partition", default="", help="SLURM partition")
    p.add_argument("--timeout-min", type=int, default=24 * 60, help="job time limit in minutes")
    p.add_argument("--job-dir", default="submitit", help="submitit logs and job files")
    p.add_argument("--nodes", type=int, default=1, help="nodes (train)")
    p.add_argument("--gpus-per-node", type=int, default=8, help="GPUs = processes per node (train)")
    p.add_argument("--wait", action="store_true",
                   help="wait for the jobs and fail if any failed (curate: then merge the shards into --output)")
    add_common_arguments(p)
    p.epilog = "Everything after -- is the submitted tool's arguments (curate, train) or the command (array)."
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    own, rest = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    args = get_parser().parse_args(own)
    setup_tool(args)
    if not rest:
        print("error: nothing to submit: give the tool's arguments after --", file=sys.stderr)
        return 2
    if args.what == "train":
        from alpseg.engine.launch import main as train_main

        train_main(rest + ["--slurm", "--cluster", args.cluster, "--nodes", str(args.nodes), "--gpus-per-node",
                           str(args.gpus_per_node), "--partition", args.partition, "--timeout-min",
                           str(args.timeout_min), "--job-dir", args.job_dir] + (["--wait"] if args.wait else []))
        return 0
    command = python_command(os.path.join(TOOLS, "curate_alps.py"), rest) if args.what == "curate" else rest
    if args.what == "curate" and "--no-progress" not in command:
        command.append("--no-progress")
    jobs = submit_array(command, args.shards, cluster=args.cluster, folder=args.job_dir, partition=args.partition,
                        timeout_min=args.timeout_min)
    if args.wait:
        failed = 0
        for job in jobs:
            try:
                job.result()
            except Exception as e:  # noqa: BLE001  (submitit re-raises the job's failure)
                failed += 1
                lines = [x.strip() for x in str(e).splitlines() if x.strip()] or [type(e).__name__]
                reason = next((x for x in reversed(lines) if "failed (exit" in x), lines[0])
                print(f"error: job {job.job_id}: {reason} (log: {job.paths.stderr})", file=sys.stderr)
        print(f"{len(jobs) - failed} of {len(jobs)} job(s) succeeded")
        if failed:
            return 1
        if args.what == "curate" and "--output" in rest[:-1]:
            output = rest[rest.index("--output") + 1]
            shards = [shard_path(output, i, args.shards) for i in range(args.shards)]
            if args.shards == 1:
                os.replace(shards[0], output)
            else:
                merge = python_command(os.path.join(TOOLS, "curate_alps.py"), ["--merge"] + shards + ["--output", output])
                if subprocess.run(merge).returncode:
                    print(f"error: merging the shards into {output} failed", file=sys.stderr)
                    return 1
            print(f"written {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
