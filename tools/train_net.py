#!/usr/bin/env python
"""Train or evaluate an alpseg model (detectron2-standard command line).

    python tools/train_net.py --config-file configs/fcos_mo_coco_oid.yaml --num-gpus 8
    python tools/train_net.py --config-file CFG --eval-only MODEL.WEIGHTS model_final.pth
    python tools/train_net.py --config-file CFG --num-gpus 0 SOLVER.MAX_ITER 10   # CPU
"""
import sys

from alpseg.engine import main

if __name__ == "__main__":
    sys.exit(main())
