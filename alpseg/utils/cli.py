"""What every ``tools/`` script shares: the ``--no-progress`` flag and one way of setting up logging.

A tool builds its own ``argparse`` parser, calls :func:`add_common_arguments` on it, and after parsing
calls :func:`setup_tool`; ``main`` returns an exit code and the script ends with ``sys.exit(main())``
(0 = done, 1 = failed or did nothing, 2 = bad arguments or input).
"""
from __future__ import annotations

import argparse
import logging
from typing import Optional

from .progress import disable_progress

__all__ = ["add_common_arguments", "setup_tool"]


def add_common_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the flags every tool has (today ``--no-progress``) and return the parser."""
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (also in the processes the tool starts)")
    return parser


def setup_tool(args: argparse.Namespace, output: Optional[str] = None, rank: int = 0) -> logging.Logger:
    """Log ``alpseg`` and ``detectron2`` messages to the console (and to ``output`` if given, a folder or
    a ``.txt``/``.log`` file) the same way in every tool, switch progress bars off on ``--no-progress``,
    and return the ``alpseg`` logger.

    detectron2's ``setup_logger`` is memoized, so calling this twice with the same arguments adds no
    second handler (no repeated console lines).
    """
    from detectron2.utils.logger import setup_logger

    if getattr(args, "no_progress", False):
        disable_progress()
    setup_logger(output, distributed_rank=rank, name="detectron2", abbrev_name="d2")
    return setup_logger(output, distributed_rank=rank, name="alpseg", abbrev_name="alpseg")
