"""Phrase embeddings: ViLD prompts (``prompts``), the open_clip phrase encoder (``encoder``), phrase
banks and test vocabularies (``bank``). See docs/phrase_bank.md."""
from .bank import (  # noqa: F401
    PhraseBank,
    Vocabulary,
    build_vocabulary,
    load_bank_for_cfg,
    load_test_vocabulary,
    read_phrase_source,
    update_bank_file,
)
from .encoder import PhraseEncoder, encode_phrases, encoder_id  # noqa: F401
from .prompts import article, expand_prompts, get_templates, normalize_phrase  # noqa: F401

__all__ = [
    "PhraseBank", "PhraseEncoder", "Vocabulary", "article", "build_vocabulary", "encode_phrases",
    "encoder_id", "expand_prompts", "get_templates", "load_bank_for_cfg", "load_test_vocabulary",
    "normalize_phrase", "read_phrase_source", "update_bank_file",
]
