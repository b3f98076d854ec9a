"""Proposal generators registered in detectron2's ``PROPOSAL_GENERATOR_REGISTRY``."""
from .selective_rpn import SelectiveRPN

__all__ = ["SelectiveRPN"]
