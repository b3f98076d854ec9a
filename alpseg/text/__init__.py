"""Phrase embeddings: ViLD prompts (``prompts``), the open_clip phrase encoder (``encoder``), the
phrase bank file (``bank``) and test vocabularies (``vocabulary``). See docs/phrase_bank.md."""
from .bank import PhraseBank, load_bank_for_cfg, update_bank_file  # noqa: F401
from .encoder import PhraseEncoder, encode_phrases, encoder_id  # noqa: F401
from .prompts import article, expand_prompts, get_templates, normalize_phrase  # noqa: F401
from .vocabulary import Vocabulary, build_vocabulary, load_test_vocabulary, read_phrase_source  # noqa: F401

__all__ = [
    "PhraseBank", "PhraseEncoder", "Vocabulary", "article", "build_vocabulary", "encode_phrases",
    "encoder_id", "expand_prompts", "get_templates", "load_bank_for_cfg", "load_test_vocabulary",
    "normalize_phrase", "read_phrase_source", "update_bank_file",
]
