"""A local web app over alpseg's own APIs (``tools/app.py``; needs the ``app`` extra: Gradio).

* :mod:`.segment`: any-vocabulary segmentation of one image (``OpenVocabPredictor``; ONNX hook);
* :mod:`.alps`: ALP review (highlighted narration, trace points in the time window, boxes);
* :mod:`.results`: results files of the demo, of ``tools/train_net.py`` and of the evaluator, compared;
* :mod:`.ui`: the Gradio layout (imports Gradio only when called).

Everything but :func:`build_app` works without Gradio.
"""
from .alps import AlpBrowser
from .inputs import AppInputs
from .results import RunResult, load_results
from .segment import SegmentSession, onnx_available


def build_app(*args, **kwargs):
    """See :func:`alpseg.app.ui.build_app` (imported here on first call: it needs Gradio)."""
    from .ui import build_app as _build

    return _build(*args, **kwargs)


__all__ = ["AlpBrowser", "AppInputs", "RunResult", "load_results", "SegmentSession", "onnx_available", "build_app"]
