#!/usr/bin/env bash
# Build the folder that bench/gpu_check.sh needs on a bare GPU machine with Python 3.12 + torch but
# without detectron2 and friends, and without network (docs/benchmarks.md, "The GPU check").
#
#   bench/make_gpu_bundle.sh BUNDLE WORLD_SEED_DIR
#
# BUNDLE gets: site/ (the pure-Python packages alpseg needs, copied from this venv: detectron2 without
# its compiled _C, fvcore, iopath, omegaconf, antlr4, hydra, yacs, termcolor, open_clip, ftfy,
# wcwidth), whl/ (cp312 manylinux wheels of the compiled ones: pycocotools, orjson, shapely (fvcore's
# polygon transforms in the data loader), same versions as
# here), src/ (`git archive HEAD` of this repository: the committed code that is measured; the commit
# is in src/COMMIT) and world/ (a miniature world's datasets/ and phrase_bank.npz, made with
# `tools/run_demo.py --seeds 0 --iterations 2 --output DIR`, WORLD_SEED_DIR = DIR/seed_0: the ALPs
# are curated there, so spaCy is not needed on the GPU machine). About 45 MB.
# Exits non-zero when anything is missing.
set -euo pipefail
BUNDLE=${1:?usage: bench/make_gpu_bundle.sh BUNDLE WORLD_SEED_DIR}
WORLD=${2:?usage: bench/make_gpu_bundle.sh BUNDLE WORLD_SEED_DIR}
PY=${PYTHON:-.venv/bin/python}
REPO=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$WORLD/datasets/manifest.json" ] && [ -f "$WORLD/phrase_bank.npz" ] || {
  echo "make_gpu_bundle: $WORLD has no datasets/manifest.json or phrase_bank.npz; make one with" \
       "tools/run_demo.py --seeds 0 --iterations 2 --output DIR and pass DIR/seed_0" >&2; exit 1; }
rm -rf "$BUNDLE"
mkdir -p "$BUNDLE/site" "$BUNDLE/whl" "$BUNDLE/src" "$BUNDLE/world"

# pure-Python packages: the folder each import name resolves to, with its dist-info (for metadata)
for mod in detectron2 fvcore iopath omegaconf antlr4 hydra yacs termcolor open_clip ftfy wcwidth; do
  dir=$("$PY" -c "import $mod, os; print(os.path.dirname($mod.__file__))")
  cp -r "$dir" "$BUNDLE/site/"
  cp -r "$(dirname "$dir")/${mod}"*.dist-info "$BUNDLE/site/" 2>/dev/null || true
done
# detectron2's compiled ops are built for another Python and alpseg does not use them
find "$BUNDLE/site" \( -name "*.so" -o -name "__pycache__" \) -prune -exec rm -rf {} +

# compiled packages: wheels for CPython 3.12 on x86-64 Linux, the versions installed here
for dist in pycocotools orjson shapely; do
  ver=$("$PY" -c "from importlib.metadata import version; print(version('$dist'))")
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$BUNDLE/whl" "$dist==$ver"
done

git -C "$REPO" archive HEAD alpseg tools bench configs | tar -x -C "$BUNDLE/src"
git -C "$REPO" rev-parse HEAD > "$BUNDLE/src/COMMIT"
cp -r "$WORLD/datasets" "$WORLD/phrase_bank.npz" "$BUNDLE/world/"
du -sh "$BUNDLE"
