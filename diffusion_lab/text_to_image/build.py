"""The text-to-image stage's pieces from its config: the caption grammar of ``text.*`` and the
configured backbone (``backbone=...``, a U-Net or DiT) built with cross-attention to the
prompt (``context_dim`` = the text encoder's width) and no class table, inside
:class:`~diffusion_lab.backbones.TextConditioned` with its text encoder."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig

from diffusion_lab.backbones.text_conditioned import TextConditioned
from diffusion_lab.backbones.text_encoder import TextEncoder
from diffusion_lab.text.captions import CaptionGrammar


def caption_grammar(text: DictConfig) -> CaptionGrammar:
    return CaptionGrammar(list(text.class_words), bool(text.numerals),
                          float(text.slant_threshold), list(text.get("holdout") or []))


def text_backbone(backbone: DictConfig, text: DictConfig) -> TextConditioned:
    if int(backbone.get("num_classes", 0) or 0):
        raise ValueError("a text-to-image model is conditioned on a prompt, not on class ids: "
                         "set backbone.num_classes=0")
    tokenizer = caption_grammar(text).tokenizer
    enc = text.encoder
    encoder = TextEncoder(tokenizer.vocab_size, tokenizer.max_length, dim=enc.dim,
                          depth=enc.depth, num_heads=enc.num_heads)
    net = instantiate(backbone, num_classes=0, context_dim=encoder.dim, _convert_="all")
    return TextConditioned(net, encoder)
