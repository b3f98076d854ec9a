"""The Gradio interface: three tabs wired to :mod:`alpseg.app.segment`, :mod:`alpseg.app.alps` and
:mod:`alpseg.app.results`. This module only lays out components and converts between them and those
modules; elements the browser test looks for carry ``elem_id``s (listed in docs/app.md).
"""
from __future__ import annotations

from typing import List, Optional


from .alps import ALP_TABLE_HEADERS, AlpBrowser
from .inputs import VOCABULARY_DATASETS, AppInputs
from .results import SUMMARY_HEADERS, load_results, per_category_rows, summary_rows
from .segment import DETECTION_HEADERS, SegmentSession, detection_rows, draw_detections, onnx_available

__all__ = ["build_app"]


def _gr():
    try:
        import gradio as gr
    except ImportError:
        raise ImportError("the app needs Gradio: pip install -e '.[app]' (or `make setup`)") from None
    return gr


def _frame(rows: List[list], headers: List[str]):
    import pandas as pd

    return pd.DataFrame(rows, columns=headers)


def build_app(inputs: AppInputs, score_thresh: float = 0.3, alp_browser: Optional[AlpBrowser] = None):
    """The app as a ``gradio.Blocks`` (not launched). ``alp_browser`` defaults to one over ``inputs``."""
    gr = _gr()
    session = SegmentSession()
    if alp_browser is None and inputs.alps:
        alp_browser = AlpBrowser(inputs.alps, inputs.image_root, inputs.narratives)

    with gr.Blocks(title="alpseg", analytics_enabled=False) as app:
        gr.Markdown("# alpseg: segment with any vocabulary, review ALPs, compare runs")
        with gr.Tab("Segment", elem_id="tab-segment"):
            _segment_tab(gr, session, inputs, score_thresh)
        with gr.Tab("ALPs", elem_id="tab-alps"):
            _alps_tab(gr, alp_browser)
        with gr.Tab("Results", elem_id="tab-results"):
            _results_tab(gr, inputs.results)
    return app


# -- Segment ---------------------------------------------------------------------------------------
def _segment_tab(gr, session: SegmentSession, inputs: AppInputs, score_thresh: float) -> None:
    model_label = "Checkpoint (.pth)" + (" or exported model (.onnx)" if onnx_available() else "")
    with gr.Row():
        with gr.Column():
            image = gr.Image(type="numpy", label="Image", sources=["upload", "clipboard"], elem_id="segment-image")
            if inputs.examples:
                gr.Examples(examples=[[p] for p in inputs.examples], inputs=[image], label="Miniature images")
            vocabulary = gr.Textbox(value=inputs.vocabulary, label="Vocabulary: comma list, phrase file, or dataset",
                                    elem_id="vocabulary")
            dataset = gr.Dropdown(choices=VOCABULARY_DATASETS, value=None, label="…or a registered dataset's classes")
            with gr.Accordion("Model", open=False):
                run = gr.Dropdown(choices=list(inputs.models), label="Trained run", elem_id="model-run",
                                  value=next((n for n, cw in inputs.models.items()
                                              if cw == (inputs.config_file, inputs.weights)), None),
                                  visible=bool(inputs.models))
                config = gr.Textbox(value=inputs.config_file, label="Config (the run's config.yaml)",
                                    elem_id="model-config")
                weights = gr.Textbox(value=inputs.weights, label=model_label, elem_id="model-weights")
            score = gr.Slider(0.0, 1.0, value=score_thresh, step=0.01, label="Score threshold", elem_id="score")
            button = gr.Button("Segment", variant="primary", elem_id="segment-button")
        with gr.Column():
            drawn = gr.Image(label="Detections", interactive=False, elem_id="segment-output")
            count = gr.Markdown(elem_id="detections-count")
            # max_height: up to 100 detections stay rendered (a shorter table renders only its visible rows)
            table = gr.Dataframe(headers=DETECTION_HEADERS, label="Detections", interactive=False,
                                 elem_id="detections", max_height=4000)
    state = gr.State(None)  # (image, instances, phrases) of the last run; the slider only re-filters

    def segment(img, vocab, cfg, w, thresh):
        if img is None:
            raise gr.Error("upload or pick an image first")
        if not vocab.strip():
            raise gr.Error("type a vocabulary (e.g. 'dolphin, apple') or choose a dataset")
        try:
            instances, phrases = session.predict(img, cfg.strip(), w.strip(), vocab)
        except (ValueError, KeyError, FileNotFoundError, OSError, TypeError) as e:
            raise gr.Error(str(e).strip("'\""))
        return _show(img, instances, phrases, thresh) + ((img, instances, phrases),)

    def refilter(last, thresh):
        if last is None:
            return gr.update(), gr.update(), gr.update()
        return _show(*last, thresh)

    def _show(img, instances, phrases, thresh):
        rows = detection_rows(instances, phrases, thresh)
        return (draw_detections(img, instances, phrases, thresh), _frame(rows, DETECTION_HEADERS),
                f"**{len(rows)} detections** with score >= {float(thresh):.2f}")

    button.click(segment, [image, vocabulary, config, weights, score], [drawn, table, count, state])
    run.change(lambda name: inputs.models.get(name, (gr.update(), gr.update())), [run], [config, weights])
    score.change(refilter, [state, score], [drawn, table, count], trigger_mode="always_last")
    dataset.change(lambda name: name or gr.update(), [dataset], [vocabulary])


# -- ALPs ------------------------------------------------------------------------------------------
def _alps_tab(gr, browser: Optional[AlpBrowser]) -> None:
    if browser is None:
        gr.Markdown("No ALPS.json given: start the app with `--alps ALPS.json --image-root DIR "
                    "[--narratives LN.jsonl]` (or `--demo-dir output/demo`).")
        return
    ids = browser.image_ids()
    info = (f"{len(ids)} images, {sum(len(v) for v in browser.by_image.values())} ALPs from `{browser.alps_json}`; "
            + (f"{len(browser.narratives)} narratives loaded"
               + (f", {sum(browser.narrative_skips.values())} unusable lines skipped "
                  f"({dict(browser.narrative_skips)})" if browser.narrative_skips else "")
               if browser.has_narratives else "no narratives file: traces not shown")
            + f"; trace window padding {browser.temporal_padding} s; quantized boxes Q = {browser.quantization}")
    gr.Markdown(info, elem_id="alp-info")
    with gr.Row():
        phrase_filter = gr.Textbox(label="Filter by phrase", elem_id="alp-filter")
        image_id = gr.Dropdown(choices=ids, value=ids[0] if ids else None, label="Image", elem_id="alp-image-id")
        quantized = gr.Checkbox(value=True, label="quantized boxes (dashed)")
    first = ids[0] if ids else None
    with gr.Row():
        drawn = gr.Image(value=browser.draw(first) if first else None, label="ALP boxes and trace points",
                         interactive=False, elem_id="alp-image")
        with gr.Column():
            narration = gr.HTML(browser.narration_html(first) if first else "", elem_id="alp-narration")
            table = gr.Dataframe(value=_frame(browser.alp_rows(first) if first else [], ALP_TABLE_HEADERS),
                                 label="ALPs of this image", interactive=False, elem_id="alp-table")
    import pandas as pd

    gr.BarPlot(value=pd.DataFrame(browser.report_rows()), x="reason", y="count", color="outcome",
               title="Curation report: kept ALPs, skipped narratives, dropped phrases", x_label_angle=-30,
               elem_id="curation-report")

    def show(iid, needle, quant):
        if not iid:
            return None, "<p>no image selected</p>", _frame([], ALP_TABLE_HEADERS)
        return (browser.draw(iid, needle, show_quantized=quant), browser.narration_html(iid, needle),
                _frame(browser.alp_rows(iid, needle), ALP_TABLE_HEADERS))

    def refilter(needle, iid, quant):
        matching = browser.image_ids(needle)
        iid = iid if iid in matching else (matching[0] if matching else None)
        return (gr.update(choices=matching, value=iid),) + show(iid, needle, quant)

    image_id.change(show, [image_id, phrase_filter, quantized], [drawn, narration, table])
    quantized.change(show, [image_id, phrase_filter, quantized], [drawn, narration, table])
    phrase_filter.submit(refilter, [phrase_filter, image_id, quantized], [image_id, drawn, narration, table])


# -- Results ---------------------------------------------------------------------------------------
def _results_values(paths: List[str], how: str):
    """(summary frame, per-category long frame, its category order, per-category wide frame)."""
    import pandas as pd

    runs = load_results(paths)
    rows = per_category_rows(runs, how)
    categories = list(dict.fromkeys(r["category"] for r in rows))
    long = pd.DataFrame(rows, columns=["category", "run", "AP50"])
    # one bar per (category, run), side by side: a bar plot with a colour column would stack the APs
    several = long["run"].nunique() > 1
    long["bar"] = long["category"] + " · " + long["run"] if several else long["category"]
    order = list(long["bar"])
    wide = (long.pivot(index="category", columns="run", values="AP50").reindex(categories).reset_index() if rows
            else pd.DataFrame(columns=["category"]))
    return _frame(summary_rows(runs), SUMMARY_HEADERS), long, order, wide


def _results_tab(gr, paths: List[str]) -> None:
    files = gr.Textbox(value="\n".join(paths), lines=max(2, min(6, len(paths))),
                       label="results.json / evaluator outputs, one path a line", elem_id="results-files")
    with gr.Row():
        load = gr.Button("Load", elem_id="results-load")
        sort = gr.Radio(["AP", "name"], value="AP", label="Sort categories by")
    summary, long, order, wide = _results_values(paths, "AP") if paths else (None, None, None, None)
    summary = gr.Dataframe(value=summary, headers=SUMMARY_HEADERS, label="Base / novel AP50 (%) side by side",
                           interactive=False, elem_id="results-table")
    plot = gr.BarPlot(value=long, x="bar", y="AP50", color="run", sort=order or None, x_title="category",
                      y_lim=[0, 100],
                      title="Per-category AP50 (%)", x_label_angle=-45, elem_id="per-category-plot")
    per_class = gr.Dataframe(value=wide, label="Per-category AP50 (%) (click a header to sort)", interactive=False,
                             elem_id="per-category-table")

    def refresh(text, how):
        names = [p.strip() for p in text.splitlines() if p.strip()]
        if not names:
            raise gr.Error("give at least one results file")
        try:
            summary_, long_, order_, wide_ = _results_values(names, how)
        except ValueError as e:
            raise gr.Error(str(e))
        return summary_, gr.update(value=long_, sort=order_ or None), wide_

    load.click(refresh, [files, sort], [summary, plot, per_class])
    sort.change(refresh, [files, sort], [summary, plot, per_class])
