"""tools/ablate.py: its flags, and a non-zero exit (before any work) on a request it cannot run."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ABLATE = os.path.join(REPO, "tools", "ablate.py")


def _run(args, tmp_path):
    return subprocess.run([sys.executable, ABLATE, "--output", str(tmp_path / "out")] + args, cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_flags_and_bad_requests(tmp_path):
    out = subprocess.run([sys.executable, ABLATE, "--help"], capture_output=True, text=True, cwd=REPO).stdout
    for flag in ("--ablations", "--seeds", "--iterations", "--parallel", "--no-progress", "fcos_fg_bias", "coco_merge"):
        assert flag in out
    assert _run(["--ablations", "no_such_ablation"], tmp_path).returncode == 2
    proc = _run(["--iterations", "0", "--no-progress"], tmp_path)
    assert proc.returncode == 1 and "iteration" in proc.stderr + proc.stdout
    assert not (tmp_path / "out").exists()  # nothing was prepared
