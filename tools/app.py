#!/usr/bin/env python
"""A local web app: segment with any vocabulary, review curated ALPs, compare results (Gradio).

    python tools/app.py --demo-dir output/demo            # on the outputs of `make demo`
    python tools/app.py --config-file RUN/config.yaml --weights RUN/model_final.pth \
        --alps ALPS.json --image-root IMAGES --narratives LN.jsonl --results RUN/results.json

Serves on http://127.0.0.1:7860 (--host / --port to change). Needs the app extra: pip install -e '.[app]'.
Explicit paths override the parts of --demo-dir. See docs/app.md.
"""
import argparse
import os
import sys

from alpseg.utils.cli import add_common_arguments, setup_tool


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--demo-dir", default="", help="folder written by tools/run_demo.py (make demo: output/demo)")
    p.add_argument("--config-file", default="", help="config of the model the Segment tab opens")
    p.add_argument("--weights", default="", help="its checkpoint (.pth), or an .onnx model when alpseg.export exists")
    p.add_argument("--vocabulary", default="", help="default vocabulary: comma list, phrase file or dataset name")
    p.add_argument("--alps", default="", help="ALPS.json for the ALPs tab")
    p.add_argument("--image-root", default="", help="folder the ALPs' image file_name are relative to")
    p.add_argument("--narratives", nargs="+", default=[], help="Localized Narratives JSONL the ALPs came from")
    p.add_argument("--results", nargs="+", default=[], help="results.json files / evaluator outputs to compare")
    p.add_argument("--score-thresh", type=float, default=0.3, help="initial score threshold of the Segment tab")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    add_common_arguments(p)
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    setup_tool(args)
    if args.demo_dir:
        # the demo's registered datasets (dataset vocabularies) live under its datasets/ folder
        os.environ.setdefault("DETECTRON2_DATASETS", os.path.join(os.path.abspath(args.demo_dir), "datasets"))
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio  # noqa: F401
    except ImportError:
        print("error: the app needs Gradio; install it with: pip install -e '.[app]'", file=sys.stderr)
        return 2
    import alpseg  # noqa: F401  (registers models and datasets)
    from alpseg.app import AlpBrowser, AppInputs, build_app

    try:
        inputs = AppInputs.from_demo_dir(args.demo_dir) if args.demo_dir else AppInputs()
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    inputs = inputs.override(config_file=args.config_file, weights=args.weights, vocabulary=args.vocabulary,
                             alps=args.alps, image_root=args.image_root, narratives=args.narratives,
                             results=args.results)
    missing = inputs.missing()
    if missing:
        print("error: not found:\n  " + "\n  ".join(missing)
              + "\n(run `make demo` for output/demo, or fix the paths)", file=sys.stderr)
        return 2
    if not (inputs.weights or inputs.alps or inputs.results):
        print("error: nothing to show; give --demo-dir, or --weights/--alps/--results (see --help)", file=sys.stderr)
        return 2
    browser = None
    if inputs.alps:
        if not inputs.image_root:
            print("error: --alps needs --image-root (the folder of its images)", file=sys.stderr)
            return 2
        browser = AlpBrowser(inputs.alps, inputs.image_root, inputs.narratives, progress=not args.no_progress)
    app = build_app(inputs, score_thresh=args.score_thresh, alp_browser=browser)
    print(f"[app] serving on http://{args.host}:{args.port}", flush=True)
    app.launch(server_name=args.host, server_port=args.port, inbrowser=False, share=False, show_error=True,
               allowed_paths=[p for p in (inputs.image_root,) if p])
    return 0


if __name__ == "__main__":
    sys.exit(main())
