"""The transfer suite's public names in one place (kept for existing imports).

The suite is three modules: :mod:`~alpseg.transfer.tasks` (the task dataclasses and their
registry), :mod:`~alpseg.transfer.runner` (conversion, per-task state and resumption, the results
files) and :mod:`~alpseg.transfer.table` (the Markdown / JSON table beside the published rows).
"""
from .runner import RESULT_FILE, STATE_FILE, run_suite
from .table import REFERENCES, load_references, results_table, table_markdown
from .tasks import (
    DEFAULT_TASKS,
    TASKS,
    ClassificationTask,
    Detectron2Task,
    SuiteContext,
    TransferTask,
    VOC07SVMTask,
    parse_task_overrides,
    register_task,
)

__all__ = ["TransferTask", "VOC07SVMTask", "ClassificationTask", "Detectron2Task", "SuiteContext", "TASKS",
           "DEFAULT_TASKS", "register_task", "run_suite", "parse_task_overrides", "load_references", "results_table",
           "table_markdown", "RESULT_FILE", "STATE_FILE", "REFERENCES"]
