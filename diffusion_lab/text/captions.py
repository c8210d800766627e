"""Captions of labelled digit images, for text-to-image training on data without captions:
the class word (or numeral) and the slant measured from the image.

Slant. With w(r, c) >= 0 the image's ink ((x + 1) / 2 summed over channels) at row r (down)
and column c, and means, covariance and variance under w,

    slant(x) = -Cov_w(c, r) / Var_w(r),

the horizontal shift of the ink per row upwards: a stroke c = c0 + k (r0 - r) has slant k
exactly; > 0 leans right. ``slant_bins`` puts it in left (< -tau), upright, right (> tau).

Grammar. A caption is ``"[a|an] {class} [{slant phrase}]"`` with class = the class word
(e.g. "seven") or its numeral ("7"), the article "an" before a vowel sound ("an eight", "an 8"),
and slant phrase "slanted left" | "upright" | "slanted right": e.g. "seven slanted left",
"a 3 upright", "an eight". :meth:`CaptionGrammar.tokens` builds the same token ids for a batch
in tensor ops (no host sync in a training step).

Held-out combinations (compositional generalisation): ``holdout`` (class, slant bin) pairs are
never named together in training. Their images are captioned by the class alone, so the model
learns the class and the slant, each from other images, and a prompt that names the pair asks
for a combination it has never been told.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .tokenizer import PAD_ID, WordTokenizer

SLANT_NAMES = ("left", "upright", "right")
SLANT_PHRASES = ("slanted left", "upright", "slanted right")
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def slant(images: Tensor) -> Tensor:
    """slant(x) = -Cov_w(c, r) / Var_w(r) per image of (B, C, H, W) in [-1, 1]: (B,) float64."""
    w = ((images.double() + 1) / 2).clamp(min=0).sum(1)  # (B, H, W)
    h, wd = w.shape[-2:]
    r = torch.arange(h, dtype=w.dtype, device=w.device)[:, None]  # (H, 1)
    c = torch.arange(wd, dtype=w.dtype, device=w.device)[None, :]  # (1, W)
    mass = w.sum((1, 2)).clamp(min=1e-12)
    mr = (w * r).sum((1, 2)) / mass
    mc = (w * c).sum((1, 2)) / mass
    dr = r - mr[:, None, None]
    dc = c - mc[:, None, None]
    cov = (w * dr * dc).sum((1, 2)) / mass
    var = (w * dr * dr).sum((1, 2)) / mass
    return -cov / var.clamp(min=1e-12)


def slant_bins(images: Tensor, threshold: float) -> Tensor:
    """0 (left, slant < -tau), 1 (upright), 2 (right, slant > tau) per image: (B,) long."""
    s = slant(images)
    return (s > -threshold).long() + (s > threshold).long()


class CaptionGrammar:
    """The vocabulary, tokenizer and captions of ``class_words`` (one per class) with numerals
    ("0", "1", ...) as their other form when ``numerals``, and slant phrases."""

    def __init__(self, class_words: Sequence[str] = DIGIT_WORDS, numerals: bool = True,
                 slant_threshold: float = 0.15, holdout: Sequence[str] = ()):
        self.class_words = [str(w).lower() for w in class_words]
        if not 0 < slant_threshold < float("inf"):
            raise ValueError(f"slant_threshold must be a finite number > 0, got {slant_threshold!r}")
        self.numerals = bool(numerals)
        self.slant_threshold = float(slant_threshold)
        numeral_words = [str(k) for k in range(len(self.class_words))] if numerals else []
        words = [*self.class_words, *numeral_words, "a", "an", "slanted", "left", "upright",
                 "right"]
        if len(set(words)) != len(words):
            raise ValueError(f"class words must be distinct and differ from the numerals and "
                             f"slant words, got {self.class_words}")
        self.tokenizer = WordTokenizer(words, max_length=4)
        ids = self.tokenizer.ids
        self._class_ids = torch.tensor([ids[w] for w in self.class_words])
        self._numeral_ids = torch.tensor([ids[w] for w in numeral_words]) if numerals else None
        # the article of each class's word and numeral form
        self._articles = torch.tensor([[ids[self.article(k, False)], ids[self.article(k, True)]]
                                       for k in range(len(self.class_words))])
        self._slant_ids = torch.tensor([[ids["slanted"], ids["left"]], [ids["upright"], PAD_ID],
                                        [ids["slanted"], ids["right"]]])
        # (class, slant bin) pairs never named together: (classes, 3) bool
        self.holdout = [str(h) for h in holdout]
        self._held_out = torch.zeros(len(self.class_words), 3, dtype=torch.bool)
        for prompt in self.holdout:
            label, slant_bin = self.parse(prompt)
            if label is None or slant_bin is None:
                raise ValueError(f"a held-out combination names a class and a slant, e.g. "
                                 f"'seven slanted left'; got {prompt!r}")
            self._held_out[label, slant_bin] = True

    def is_held_out(self, label: int | None, slant_bin: int | None) -> bool:
        """Whether training never named ``label`` with ``slant_bin``."""
        return label is not None and slant_bin is not None \
            and bool(self._held_out[label, slant_bin])

    @property
    def num_classes(self) -> int:
        return len(self.class_words)

    def article(self, label: int, numeral: bool) -> str:
        """"an" before a vowel sound (the class word's, which a digit's numeral shares), else "a"."""
        word = self.class_words[label]
        return "an" if word[0] in "aeiou" and (not numeral or self.numerals) else "a"

    def text(self, label: int, slant_bin: int | None, numeral: bool = False,
             article: bool = False) -> str:
        """The caption of one image, as a user would type it."""
        word = str(label) if numeral else self.class_words[label]
        if article:
            word = f"{self.article(label, numeral)} {word}"
        return word if slant_bin is None else f"{word} {SLANT_PHRASES[slant_bin]}"

    def tokens(self, labels: Tensor, slant_bin: Tensor, numeral: Tensor, with_slant: Tensor,
               with_article: Tensor) -> Tensor:
        """Token ids (B, 4) of ``text(labels[b], slant_bin[b] if with_slant[b], numeral[b],
        with_article[b])``, padded with 0."""
        device = labels.device
        word = self._class_ids.to(device)[labels]
        if self._numeral_ids is not None:
            word = torch.where(numeral, self._numeral_ids.to(device)[labels], word)
        article = self._articles.to(device)[labels, numeral.long()]
        phrase = self._slant_ids.to(device)[slant_bin]  # (B, 2)
        phrase = torch.where(with_slant[:, None], phrase, torch.zeros_like(phrase))
        words = torch.cat([article[:, None], word[:, None], phrase,
                           torch.zeros_like(word)[:, None]], dim=1)  # (B, 5)
        # without the article every word moves one place to the left
        return torch.where(with_article[:, None], words[:, :4], words[:, 1:])

    def captions(self, labels: Tensor, images: Tensor, *, p_numeral: float = 0.5,
                 p_no_slant: float = 0.25, p_article: float = 0.5,
                 generator: torch.Generator | None = None) -> Tensor:
        """Random captions of a batch: the numeral form w.p. ``p_numeral``, the slant phrase
        left out w.p. ``p_no_slant`` (so a prompt may name the class alone) and always for a
        held-out (class, slant), the article w.p. ``p_article``; (B, 4) ids."""
        b, device = labels.shape[0], labels.device
        u = torch.rand(3, b, generator=generator, device=device)
        bins = slant_bins(images, self.slant_threshold)
        named = (u[1] >= p_no_slant) & ~self._held_out.to(device)[labels, bins]
        return self.tokens(labels, bins, u[0] < p_numeral, named, u[2] < p_article)

    def full_captions(self, labels: Tensor, images: Tensor) -> Tensor:
        """Each image's caption with its slant (unless held out), class word form, no article
        (validation: no randomness)."""
        b = labels.shape[0]
        no = torch.zeros(b, dtype=torch.bool, device=labels.device)
        bins = slant_bins(images, self.slant_threshold)
        named = ~self._held_out.to(labels.device)[labels, bins]
        return self.tokens(labels, bins, no, named, no)

    def parse(self, prompt: str) -> tuple[int | None, int | None]:
        """(class, slant bin) a prompt asks for, None where it says nothing (for scoring)."""
        words = self.tokenizer.split(prompt)
        self.tokenizer.encode_one(prompt)  # refuses unknown words
        label = None
        for k, w in enumerate(self.class_words):
            if w in words or (self.numerals and str(k) in words):
                label = k
        slant_bin = 1 if "upright" in words else 0 if "left" in words else \
            2 if "right" in words else None
        return label, slant_bin
