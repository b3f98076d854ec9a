#!/usr/bin/env bash
# alpseg's one-call GPU check (docs/benchmarks.md, "The GPU check"): everything a lent GPU machine
# should measure, in one script that ends inside a deadline and leaves JSON in OUT.
#
#   bench/gpu_check.sh BUNDLE OUT          # on the GPU machine (BUNDLE from bench/make_gpu_bundle.sh)
#   DEVICE=cpu QUICK=1 INSTALL_WHEELS=0 bench/gpu_check.sh BUNDLE OUT   # rehearsal on a CPU machine
#
# SKIP="bench_amp bench_fp32" leaves steps out; EXTRA_OPTS="KEY VALUE ..." is added to the smoke runs'
# config (the CPU rehearsal uses "TEST.DETECTIONS_PER_IMAGE 5": 100 masks per image are slow on a CPU).
# Steps, in order of importance, each under `timeout` and skipped when the deadline (DEADLINE seconds
# after the start, default 430) leaves too little for it:
#   1. bench/run.py --amp --skip curation oid_eval  (paper input size, 2 images of 1024x1024):
#      FCOS-MO / detectron2 FCOS and Mask R-CNN* / detectron2 Mask R-CNN ratios, phrase encoding;
#   2. tools/train_net.py, demo FCOS-MO + ALPs, 1 GPU, AMP, SyncBN in backbone and FPN, 60 iterations,
#      then its evaluation on the miniature Open Images validation set;
#   3. bench/run.py in fp32 (models only);
#   4. the same training smoke run for Mask R-CNN* + ALPs;
#   5. tools/export_model.py: ONNX export of the FCOS-MO of step 2 on the device.
# OUT gets summary.json (per step: exit code, seconds, and its figures), bench_amp.json,
# bench_fp32.json, logs.txt (the tail of every step's log). Exits 1 when a step that ran failed and
# 2 when no step ran.
set -u
BUNDLE=$(cd "${1:?usage: bench/gpu_check.sh BUNDLE OUT}" && pwd)
OUT=${2:?usage: bench/gpu_check.sh BUNDLE OUT}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
DEADLINE=${DEADLINE:-430}
PY=${PYTHON:-python3}
WORK=${WORK:-/tmp/alpseg-gpu-check}
rm -rf "$WORK" && mkdir -p "$WORK"
export PYTHONUNBUFFERED=1 DETECTRON2_DATASETS="$BUNDLE/world/datasets"
if [ "${INSTALL_WHEELS:-1}" = 1 ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$WORK/site" "$BUNDLE"/whl/*.whl || { echo "gpu_check: installing $BUNDLE/whl failed" >&2; exit 1; }
fi
export PYTHONPATH="$BUNDLE/src:$BUNDLE/site:$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
cd "$BUNDLE/src" || exit 1
# detectron2's model zoo needs pkg_resources.resource_filename; newer setuptools dropped pkg_resources
"$PY" -c "import pkg_resources" 2>/dev/null || {
  echo "[gpu_check] no pkg_resources here: using bench/gpu_fallback"; export PYTHONPATH="$PYTHONPATH:$BUNDLE/src/bench/gpu_fallback"; }
: > "$WORK/steps.tsv"

# run NAME NEEDED_SECONDS TIMEOUT_SECONDS CMD...: one step, logged, timed, skipped if out of time
run() {
  local name=$1 need=$2 limit=$3; shift 3
  local left=$((DEADLINE - SECONDS))
  case " ${SKIP:-} " in *" $name "*)
    echo "[gpu_check] $name skipped (SKIP)" | tee -a "$OUT/logs.txt"
    printf '%s\tskipped\t0\n' "$name" >> "$WORK/steps.tsv"; return;; esac
  if [ "$left" -lt "$need" ]; then
    echo "[gpu_check] $name skipped: $left s left, needs $need" | tee -a "$OUT/logs.txt"
    printf '%s\tskipped\t0\n' "$name" >> "$WORK/steps.tsv"; return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "[gpu_check] $name (limit $limit s): $*"
  local t0=$SECONDS rc
  timeout -k 5 "$limit" "$@" > "$WORK/$name.log" 2>&1; rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >> "$WORK/steps.tsv"
  { echo "===== $name: exit $rc after $((SECONDS - t0)) s: $*"; tail -n 60 "$WORK/$name.log"; } >> "$OUT/logs.txt"
  echo "[gpu_check] $name: exit $rc after $((SECONDS - t0)) s"
}

"$PY" - > "$WORK/env.json" <<'EOF'
import json, platform, torch, numpy, detectron2, fvcore, pycocotools, orjson, open_clip
print(json.dumps({"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
                  "cuda": torch.version.cuda, "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                  "detectron2": detectron2.__version__, "detectron2_path": detectron2.__file__, "open_clip": open_clip.__version__}))
EOF
[ $? = 0 ] || { echo "gpu_check: the imports failed (see above)" >&2; exit 1; }
cat "$WORK/env.json"

VOCAB=$("$PY" -c "from alpseg.data.miniature import CLASSES; print(','.join(c.name for c in CLASSES))")
BANK="$BUNDLE/world/phrase_bank.npz"
if [ "$DEVICE" = cpu ]; then GPUS=0; ITERS=4; else GPUS=1; ITERS=60; fi
QUICKFLAG=(); [ "$QUICK" = 1 ] && QUICKFLAG=(--quick)
AMPFLAG=(); [ "$DEVICE" != cpu ] && AMPFLAG=(--amp)
# the smoke runs of steps 2 and 4 (the demo recipe, made a 1-GPU AMP + SyncBN run)
TRAIN_OPTS=(MODEL.DEVICE "$DEVICE" SOLVER.AMP.ENABLED True MODEL.RESNETS.NORM SyncBN MODEL.FPN.NORM SyncBN
  SOLVER.MAX_ITER "$ITERS" SOLVER.WARMUP_ITERS 10 SOLVER.CHECKPOINT_PERIOD 100000 DATALOADER.NUM_WORKERS 2 SEED 0
  MODEL.OPEN_VOCAB.EMBEDDINGS "$BANK" MODEL.OPEN_VOCAB.TEST_VOCABULARY "$VOCAB" ${EXTRA_OPTS:-})

run bench_amp 60 200 "$PY" bench/run.py --device "$DEVICE" "${AMPFLAG[@]}" "${QUICKFLAG[@]}" \
  --skip curation oid_eval --output "$OUT/bench_amp.json"
run train_fcos_mo 60 150 "$PY" tools/train_net.py --no-progress --config-file configs/demo/fcos_mo_alp.yaml --num-gpus "$GPUS" \
  OUTPUT_DIR "$WORK/fcos_mo" "${TRAIN_OPTS[@]}"
run bench_fp32 60 150 "$PY" bench/run.py --device "$DEVICE" "${QUICKFLAG[@]}" \
  --skip curation oid_eval phrases --output "$OUT/bench_fp32.json"
run train_mask_rcnn_star 60 150 "$PY" tools/train_net.py --no-progress --config-file configs/demo/mask_rcnn_star_alp.yaml \
  --num-gpus "$GPUS" OUTPUT_DIR "$WORK/mask_rcnn_star" "${TRAIN_OPTS[@]}"
SAMPLE=$(ls "$BUNDLE"/world/datasets/openimages/validation/* 2>/dev/null | head -n 1)
run export_onnx 30 90 "$PY" tools/export_model.py --config-file "$WORK/fcos_mo/config.yaml" \
  --weights "$WORK/fcos_mo/model_final.pth" --vocabulary "$VOCAB" --sample-image "$SAMPLE" \
  --format onnx --output "$WORK/export" --no-progress MODEL.DEVICE "$DEVICE"

"$PY" - "$WORK" "$OUT" <<'EOF'
"""summary.json: each step's exit code and seconds, the smoke runs' step times and evaluation."""
import json, os, re, statistics, sys
work, out = sys.argv[1:]
summary = {"env": json.load(open(os.path.join(work, "env.json"))), "steps": {}}
commit = os.path.join(os.getcwd(), "COMMIT")
summary["commit"] = open(commit).read().strip() if os.path.exists(commit) else None
for line in open(os.path.join(work, "steps.tsv")):
    name, rc, secs = line.rstrip("\n").split("\t")
    summary["steps"][name] = {"exit": rc, "seconds": int(secs)}
for name, folder in (("train_fcos_mo", "fcos_mo"), ("train_mask_rcnn_star", "mask_rcnn_star")):
    path = os.path.join(work, folder, "metrics.json")
    if name not in summary["steps"] or not os.path.exists(path):
        continue
    rows = [json.loads(l) for l in open(path) if l.strip()]
    train = [r for r in rows if "time" in r and "total_loss" in r]
    # each row's "time" is detectron2's median over the last 20 iterations; skip the first third
    last = train[-1]["iteration"] if train else 0
    later = [r["time"] for r in train if r["iteration"] >= last / 3] or [r["time"] for r in train]
    speed = re.findall(r"Overall training speed: (\d+) iterations in \S+ \(([\d.]+) s / it\)",
                       open(os.path.join(work, name + ".log"), errors="replace").read())
    evals = [r for r in rows if any("AP" in k for k in r)]
    summary["steps"][name].update(
        iterations_logged=len(train), last_iteration=train[-1]["iteration"] if train else None,
        median_step_s=statistics.median(later) if later else None,
        median_data_s=statistics.median([r["data_time"] for r in train]) if train else None,
        overall_s_per_it=float(speed[-1][1]) if speed else None,
        first_loss=train[0]["total_loss"] if train else None, last_loss=train[-1]["total_loss"] if train else None,
        # the overall figures (oid_challenge/AP50, AP50-base, AP50-novel, ...), not the per-class ones
        evaluation={k: v for k, v in evals[-1].items() if "AP" in k and ("-" not in k or k.rsplit("-", 1)[1] in ("base", "novel"))} if evals else None)
side = os.path.join(work, "export", "model.onnx.json")
if "export_onnx" in summary["steps"]:
    summary["steps"]["export_onnx"]["onnx_bytes"] = (
        os.path.getsize(os.path.join(work, "export", "model.onnx"))
        if os.path.exists(os.path.join(work, "export", "model.onnx")) else None)
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
print(json.dumps(summary, indent=2))
EOF
ran=$(awk -F'\t' '$2 != "skipped"' "$WORK/steps.tsv" | wc -l)
failed=$(awk -F'\t' '$2 != "skipped" && $2 != 0' "$WORK/steps.tsv" | wc -l)
[ "$ran" -gt 0 ] || { echo "gpu_check: no step ran" >&2; exit 2; }
[ "$failed" = 0 ] || { echo "gpu_check: $failed step(s) failed (see $OUT/logs.txt)" >&2; exit 1; }
