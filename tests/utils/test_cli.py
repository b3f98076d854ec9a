"""alpseg.utils.cli: the one logging set-up and --no-progress flag of every tool."""
import argparse
import os
import subprocess
import sys

SCRIPT = r"""
import argparse, logging
from alpseg.utils.cli import add_common_arguments, setup_tool
from alpseg.utils.progress import NO_PROGRESS_ENV
import os
args = add_common_arguments(argparse.ArgumentParser()).parse_args(["--no-progress"])
setup_tool(args)
logger = setup_tool(args)              # a second call must not repeat console lines
logger.info("alpseg-line")
logging.getLogger("detectron2.x").info("d2-line")
print("DATA", os.environ.get(NO_PROGRESS_ENV))
"""


def test_logs_go_to_stderr_once_and_no_progress_is_process_wide():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.dirname(
                             os.path.abspath(__file__))))})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "DATA 1"  # stdout holds only what the tool prints
    assert out.stderr.count("alpseg-line") == 1 and out.stderr.count("d2-line") == 1


def test_no_progress_default_off():
    from alpseg.utils.cli import add_common_arguments

    assert add_common_arguments(argparse.ArgumentParser()).parse_args([]).no_progress is False
