"""Every script in tools/ follows the same conventions (docs/architecture.md, "Tools"): the shared
``--no-progress`` flag and logging set-up of ``alpseg.utils.cli``, and an exit code from ``main``."""
import ast
import os
import subprocess
import sys

import pytest

TOOLS = os.path.join(os.path.dirname(__file__), "..", "..", "tools")
SCRIPTS = sorted(f for f in os.listdir(TOOLS) if f.endswith(".py"))
# train_net.py parses with detectron2's default_argument_parser, to which alpseg.engine.launch adds the
# same flag; its logging is detectron2's default_setup (one log per output folder, as every d2 project).
D2_CLI = {"train_net.py"}


def _calls(path):
    tree = ast.parse(open(path, encoding="utf-8").read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            names.add(f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None))
    return tree, names


@pytest.mark.parametrize("script", SCRIPTS)
def test_exits_with_main_return_code(script):
    tree, _ = _calls(os.path.join(TOOLS, script))
    guards = [n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)]
    assert guards, f"tools/{script}: no `if __name__ == '__main__':` block"
    assert "sys.exit(main())" in ast.unparse(guards[0]), f"tools/{script} must end with sys.exit(main())"


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s not in D2_CLI])
def test_shared_flags_and_logging(script):
    _, calls = _calls(os.path.join(TOOLS, script))
    assert "add_common_arguments" in calls, f"tools/{script}: add --no-progress via alpseg.utils.cli"
    assert "setup_tool" in calls, f"tools/{script}: set up logging via alpseg.utils.cli.setup_tool"
    assert "basicConfig" not in calls, f"tools/{script}: logging.basicConfig bypasses the shared set-up"


def test_no_progress_flag_is_accepted():
    """One real command line: the flag parses and the tool still runs (here: a bad input, exit 2)."""
    out = subprocess.run([sys.executable, os.path.join(TOOLS, "visualize_alps.py"), "--alps", "/nonexistent.json",
                          "--image-root", ".", "--output", "/tmp/unused", "--no-progress"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr
    assert "/nonexistent.json" in out.stderr


def test_train_net_has_the_shared_flag():
    from alpseg.engine.launch import argument_parser

    args = argument_parser().parse_args(["--config-file", "x.yaml", "--no-progress"])
    assert args.no_progress is True
