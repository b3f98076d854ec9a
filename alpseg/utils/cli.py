"""What every ``tools/`` script shares: the ``--no-progress`` flag and one way of setting up logging.

A tool builds its own ``argparse`` parser, calls :func:`add_common_arguments` on it, and after parsing
calls :func:`setup_tool`; ``main`` returns an exit code and the script ends with ``sys.exit(main())``
(0 = done, 1 = failed or did nothing, 2 = bad arguments or input).
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional

from .progress import disable_progress

__all__ = ["add_common_arguments", "setup_tool"]


def add_common_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the flags every tool has (today ``--no-progress``) and return the parser."""
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (also in the processes the tool starts)")
    return parser


def setup_tool(args: argparse.Namespace, output: Optional[str] = None, rank: int = 0) -> logging.Logger:
    """Log ``alpseg`` and ``detectron2`` messages to stderr (and to ``output`` if given, a folder or
    a ``.txt``/``.log`` file) the same way in every tool, switch progress bars off on ``--no-progress``,
    and return the ``alpseg`` logger.

    Calling it twice adds no second console handler (no repeated lines); detectron2's ``setup_logger``
    is memoized for the file handler.
    """
    from detectron2.utils.logger import setup_logger

    if getattr(args, "no_progress", False):
        disable_progress()
    for name, abbrev in (("detectron2", "d2"), ("alpseg", "alpseg")):
        # the log file (if any) from detectron2; the console lines go to stderr, so that what a tool
        # prints on stdout (output paths, tables) stays machine-readable
        logger = setup_logger(output, distributed_rank=rank, name=name, abbrev_name=abbrev, configure_stdout=False)
        if rank == 0 and not any(getattr(h, "_alpseg_console", False) for h in logger.handlers):
            console = logging.StreamHandler(sys.stderr)
            console._alpseg_console = True
            console.setLevel(logging.INFO)
            console.setFormatter(logging.Formatter(f"[%(asctime)s {abbrev}]: %(message)s", datefmt="%m/%d %H:%M:%S"))
            logger.addHandler(console)
    return logger
