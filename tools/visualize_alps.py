#!/usr/bin/env python
"""Draw the ALP boxes and phrases of some images of an ALPS.json (like the paper's Fig. 2).

  tools/visualize_alps.py --alps ALPS.json --image-root DIR --output OUT_DIR [--image-id ID ...] [--num 8]
"""
import argparse
import io
import json
import os
import random
import sys
from collections import defaultdict

from PIL import Image

from alpseg.utils.cli import add_common_arguments, setup_tool


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--alps", required=True, help="ALPS.json written by tools/curate_alps.py")
    p.add_argument("--image-root", required=True, help="folder the images' file_name are relative to")
    p.add_argument("--output", required=True, help="folder for the drawings (<image file stem>.jpg)")
    p.add_argument("--image-id", nargs="+", default=None, help="images to draw (default: --num random ones)")
    p.add_argument("--num", type=int, default=8, help="how many random images when --image-id is not given")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", type=float, default=1.0)
    add_common_arguments(p)
    return p


def main(argv=None) -> int:
    from detectron2.data.detection_utils import read_image

    from alpseg.utils.alp_visualizer import draw_alps
    from alpseg.utils.io import atomic_write

    args = get_parser().parse_args(argv)
    setup_tool(args)
    try:
        with open(args.alps, encoding="utf-8") as f:
            data = json.load(f)
        images_list, annotations = data["images"], data["annotations"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"error: {args.alps}: not an ALPS.json of tools/curate_alps.py ({e!r})", file=sys.stderr)
        return 2
    images = {str(im["id"]): im for im in images_list}
    by_image = defaultdict(list)
    for ann in annotations:
        by_image[str(ann["image_id"])].append(ann)
    if args.image_id:
        unknown = [i for i in args.image_id if i not in images]
        if unknown:
            print(f"error: image ids not in {args.alps}: {', '.join(unknown)}", file=sys.stderr)
            return 2
        ids = list(args.image_id)
    else:
        ids = sorted(by_image)
        random.Random(args.seed).shuffle(ids)
        ids = ids[: args.num]
    os.makedirs(args.output, exist_ok=True)
    written, skipped = set(), 0
    for image_id in ids:
        im = images[image_id]
        path = os.path.join(args.image_root, im["file_name"])
        try:
            image = read_image(path, format="RGB")
        except (OSError, ValueError) as e:
            print(f"warning: image {image_id}: {path} cannot be read ({e}), skipped", file=sys.stderr)
            skipped += 1
            continue
        drawn = draw_alps(image, by_image[image_id], scale=args.scale)
        stem = os.path.splitext(os.path.basename(im["file_name"]))[0]
        name = stem + ".jpg" if stem + ".jpg" not in written else f"{stem}_{image_id}.jpg"  # a/x.jpg, b/x.jpg
        written.add(name)
        buffer = io.BytesIO()
        Image.fromarray(drawn).save(buffer, format="JPEG", quality=92)
        atomic_write(os.path.join(args.output, name), buffer.getvalue())
        print(f"{os.path.join(args.output, name)}: {len(by_image[image_id])} ALPs: "
              + ", ".join(a["phrase"] for a in by_image[image_id]), flush=True)
    print(f"{len(written)} image(s) drawn, {skipped} skipped")
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
