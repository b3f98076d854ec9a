"""One logging convention under alpseg/ and tools/: module loggers named ``__name__``, %-style calls.

%-style arguments are formatted only when a record is emitted, and keep the message template
greppable; a logger named after its module can be tuned on its own (``logging.getLogger("alpseg.x")``).
"""
import ast
import glob
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = sorted(glob.glob(os.path.join(REPO, "alpseg", "**", "*.py"), recursive=True)
               + glob.glob(os.path.join(REPO, "tools", "*.py")))
LOG_METHODS = {"debug", "info", "warning", "warn", "error", "exception", "critical"}


def _problems(path):
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        name, owner = node.func.attr, node.func.value
        owner_name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
        if name == "getLogger" and owner_name == "logging" and node.args and isinstance(node.args[0], ast.Constant):
            # a constant name at module level is a module logger under another name
            yield node.lineno, f"getLogger({node.args[0].value!r}) instead of getLogger(__name__)"
        if name in LOG_METHODS and owner_name == "logging":
            yield node.lineno, f"logging.{name}() logs to the root logger, not the module's"
        if name in LOG_METHODS and "log" in owner_name.lower() and node.args:
            msg = node.args[0]
            if isinstance(msg, ast.JoinedStr):
                yield node.lineno, "f-string log message"
            elif isinstance(msg, ast.BinOp) and isinstance(msg.op, ast.Mod):
                yield node.lineno, "message formatted with % before the call"
            elif isinstance(msg, ast.Call) and isinstance(msg.func, ast.Attribute) and msg.func.attr == "format":
                yield node.lineno, "message formatted with str.format before the call"


# modules that attach handlers to, or read the level of, another package's logger (not a module logger)
OTHER_LOGGERS = {os.path.join("alpseg", "transfer", "logs.py"), os.path.join("alpseg", "engine", "trainer.py")}


@pytest.mark.parametrize("path", FILES, ids=lambda p: os.path.relpath(p, REPO))
def test_module_loggers_and_log_calls_follow_the_convention(path):
    problems = [(line, what) for line, what in _problems(path)
                if not (os.path.relpath(path, REPO) in OTHER_LOGGERS and what.startswith("getLogger"))]
    assert not problems, f"{os.path.relpath(path, REPO)}: {problems}"


def test_the_check_catches_each_kind():
    import tempfile

    src = ('import logging\nlogger = logging.getLogger("alpseg")\nx = 1\nlogger.info(f"{x}")\n'
           'logger.warning("%d" % x)\nlogger.error("{}".format(x))\nlogger.info("%d", x)\nlogging.info("x")\n')
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(src)
    try:
        assert [line for line, _ in _problems(f.name)] == [2, 4, 5, 6, 8]
    finally:
        os.remove(f.name)
