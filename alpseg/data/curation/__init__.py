"""ALP curation: Localized Narratives -> approximately localized phrases (Desai et al., sec. 3.1).

One concept per module (docs/alp_curation.md describes the algorithm and its choices):

* ``config``    -- :class:`CurationConfig` and the word lists of ``alpseg/data/resources/``
* ``phrases``   -- phrases of a POS-tagged caption (:func:`extract_phrases`)
* ``alignment`` -- caption words -> utterance times (:class:`WordTimer`)
* ``boxes``     -- the trace box of a time window (:func:`trace_box`)
* ``report``    -- counts of a run (:class:`CurationReport`)
* ``images``    -- image sizes from a COCO-style JSON (:func:`load_image_info`)
* ``pipeline``  -- the spaCy pipeline (:func:`load_spacy_pipeline`)
* ``stream``    -- the one stream driver (:func:`curate_stream`, :func:`curate_narratives`)
* ``job``       -- a resumable, shardable run over files (:class:`CurationJob`, ``tools/curate_alps.py``)
"""
from .alignment import WordTimer
from .boxes import BoxResult, trace_box
from .config import CurationConfig, load_word_list
from .images import load_image_info
from .job import CurationJob, merge_shards, parse_shard, write_alps_json
from .phrases import NON_DESCRIPTIVE_ADJECTIVES, PhraseSpan, extract_phrases
from .pipeline import (
    DEFAULT_SPACY_MODEL,
    PAPER_SPACY_MODEL,
    head_lemmatizer,
    load_spacy_pipeline,
    pipe_with_payloads,
    resolve_spacy_model,
    spacy_model_id,
)
from .report import CurationReport, format_report
from .stream import accept_narrative, alp_sort_key, curate_doc, curate_narratives, curate_stream, number_alps

__all__ = [
    "CurationConfig", "CurationReport", "PhraseSpan", "WordTimer", "BoxResult", "load_word_list",
    "load_image_info", "resolve_spacy_model", "load_spacy_pipeline", "extract_phrases", "trace_box",
    "curate_doc", "curate_stream", "pipe_with_payloads", "curate_narratives", "number_alps", "alp_sort_key",
    "accept_narrative", "format_report", "spacy_model_id", "head_lemmatizer", "DEFAULT_SPACY_MODEL",
    "PAPER_SPACY_MODEL", "NON_DESCRIPTIVE_ADJECTIVES", "CurationJob", "parse_shard", "merge_shards",
    "write_alps_json",
]
