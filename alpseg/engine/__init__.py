from .trainer import AlpsegTrainer, build_evaluator  # noqa: F401
from .launch import argument_parser, main, setup_cfg, train_or_evaluate  # noqa: F401
