"""Deprecated path, kept for one release: the model's vocabularies are in
``alpseg.modeling.vocabulary_mixin`` (reading a test vocabulary is ``alpseg.text.vocabulary``)."""
from .vocabulary_mixin import (
    NEGATIVES_MODES,
    PhraseVocabularyMixin,
    batch_vocabulary,
    index_phrases,
    instance_phrases,
    vocabulary_kwargs_from_config,
)

__all__ = ["NEGATIVES_MODES", "PhraseVocabularyMixin", "batch_vocabulary", "index_phrases", "instance_phrases",
           "vocabulary_kwargs_from_config"]
