"""A word-level tokenizer over a fixed vocabulary: id 0 is padding (the empty prompt is all
padding), word i of the vocabulary is id i + 1. Prompts are lower-cased and split on white
space and punctuation; a word outside the vocabulary is refused (one line naming it and the
vocabulary), never silently dropped."""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

PAD_ID = 0
_SPLIT = re.compile(r"[\s,.;:!?\"']+")


class WordTokenizer:
    def __init__(self, words: Sequence[str], max_length: int):
        words = [str(w) for w in words]
        if not words or len(set(words)) != len(words) or any(not w or _SPLIT.search(w)
                                                              for w in words):
            raise ValueError(f"a vocabulary must be distinct single words, got {words}")
        if isinstance(max_length, bool) or int(max_length) != max_length or max_length < 1:
            raise ValueError(f"max_length must be an integer >= 1, got {max_length!r}")
        self.words = list(words)
        self.max_length = int(max_length)
        self.ids = {w: i + 1 for i, w in enumerate(self.words)}

    @property
    def vocab_size(self) -> int:
        """Ids in use, padding included."""
        return len(self.words) + 1

    def split(self, prompt: str) -> list[str]:
        return [w for w in _SPLIT.split(str(prompt).lower()) if w]

    def encode_one(self, prompt: str) -> list[int]:
        words = self.split(prompt)
        unknown = [w for w in words if w not in self.ids]
        if unknown:
            raise ValueError(f"prompt {prompt!r}: unknown word {unknown[0]!r} (the model knows: "
                             f"{' '.join(self.words)})")
        if len(words) > self.max_length:
            raise ValueError(f"prompt {prompt!r} has {len(words)} words; the model reads at most "
                             f"{self.max_length}")
        return [self.ids[w] for w in words] + [PAD_ID] * (self.max_length - len(words))

    def encode(self, prompts: Sequence[str]) -> torch.Tensor:
        """(B, max_length) long token ids, padded with 0."""
        return torch.tensor([self.encode_one(p) for p in prompts], dtype=torch.long).reshape(
            len(prompts), self.max_length)

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.words[int(i) - 1] for i in ids if int(i) != PAD_ID)
