"""Prompts for text-to-image diffusion: a word-level tokenizer and the captions of labelled
digit images (class word and measured slant). Pure torch; knows nothing of Lightning or Hydra."""

from .captions import SLANT_NAMES, CaptionGrammar, slant, slant_bins
from .tokenizer import WordTokenizer

__all__ = ["SLANT_NAMES", "CaptionGrammar", "WordTokenizer", "slant", "slant_bins"]
