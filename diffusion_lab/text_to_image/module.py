"""The Lightning module of text-to-image diffusion: DiffusionModule with a prompt as the
condition.

Training step: c = caption(y, x0) (``text.captions.CaptionGrammar``: class word or numeral,
slant phrase measured from x0), dropped to the empty prompt (all padding) with probability
p = ``guidance.label_dropout``; t ~ U{0..T-1}, eps ~ N(0, I),
x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, loss = w(snr_t) ||target - f(x_t, t, c)||^2 with the
backbone a :class:`~diffusion_lab.backbones.TextConditioned` (its text encoder trained with it).
Sampling: D_g = D_empty + w (D_prompt - D_empty) (classifier-free guidance, the empty prompt as
the null condition). Everything else (objectives, EMA, schedules, samplers, checkpoints, resume)
is the diffusion module's own.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from diffusion_lab.guidance import classifier_free
from diffusion_lab.lit.module import DiffusionModule
from diffusion_lab.sampler_spec import SamplerSpec
from diffusion_lab.text.captions import CaptionGrammar
from diffusion_lab.text.tokenizer import PAD_ID


class TextToImageModule(DiffusionModule):
    def __init__(self, *, grammar: CaptionGrammar, **kwargs) -> None:
        super().__init__(**kwargs)
        if self.num_classes:
            raise ValueError("a text-to-image model is conditioned on a prompt, not on class ids: "
                             "set backbone.num_classes=0")
        if getattr(self.backbone, "max_length", None) != grammar.tokenizer.max_length \
                or self.backbone.encoder.vocab_size != grammar.tokenizer.vocab_size:
            raise ValueError("the backbone must be a TextConditioned backbone for this "
                             "vocabulary and prompt length")
        self.grammar = grammar

    @property
    def tokenizer(self):
        return self.grammar.tokenizer

    def condition(self, x0: torch.Tensor, y: torch.Tensor, training: bool) -> torch.Tensor:
        """Captions of (x0, y): random wording in training, dropped to the empty prompt w.p.
        ``label_dropout``; each image's full caption otherwise (validation)."""
        if not training:
            return self.grammar.full_captions(y, x0)
        tokens = self.grammar.captions(y, x0)
        if self.label_dropout > 0:
            drop = torch.rand(tokens.shape[0], device=tokens.device) < self.label_dropout
            tokens = torch.where(drop[:, None], torch.full_like(tokens, PAD_ID), tokens)
        return tokens

    # ------------------------------------------------------------------ sampling
    @property
    def conditional(self) -> bool:
        """Always: the prompt, dropped to the empty one for guidance."""
        return True

    def denoiser(self, *, use_ema: bool = True, guidance_scale: float | None = None,
                 negative_prompt: str | None = None):
        """D(x, sigma, tokens), guided against the empty prompt (all padding), or against
        ``negative_prompt``: D_neg + w (D_prompt - D_neg)."""
        if self.guidance_rule is not None or self.classifier_guidance is not None:
            raise ValueError("a text-to-image model is guided by classifier-free guidance only")
        scale = self.guidance_scale if guidance_scale is None else guidance_scale
        negative = None if negative_prompt is None else self.encode_prompts([negative_prompt])
        return self.bounded(classifier_free(self.network_denoiser(use_ema),
                                            self.check_guidance_scale(scale), PAD_ID,
                                            negative=negative))

    def encode_prompts(self, prompts: Sequence[str]) -> torch.Tensor:
        """(B, L) token ids of ``prompts`` (ValueError, one line, for an unknown word)."""
        return self.tokenizer.encode(list(prompts)).to(self.device)

    def sample(self, *args, **kwargs):
        raise ValueError("a text-to-image model samples images for prompts: call "
                         "generate(prompts) (scripts/text_to_image.py)")

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], *, sampler: SamplerSpec | None = None,
                 guidance_scale: float | None = None, seed: int = 0,
                 indices: Sequence[int] | None = None, use_ema: bool = True,
                 callback=None, negative_prompt: str | None = None) -> torch.Tensor:
        """x ~ p(x | prompt) for each prompt (guided at ``guidance_scale``, the model's by
        default, against the empty prompt or ``negative_prompt``); sample ``indices[b]``
        (default range(B)) depends only on (seed, index)."""
        tokens = self.encode_prompts(prompts)
        spec = self.sampler_or_default(sampler)
        was_training = self.training
        self.eval()
        try:
            return spec.sample(self.denoiser(use_ema=use_ema, guidance_scale=guidance_scale,
                                             negative_prompt=negative_prompt),
                               self.schedule, (len(prompts), *self.sample_shape), cond=tokens,
                               seed=seed, indices=indices, callback=callback, device=self.device)
        finally:
            self.train(was_training)

    def model_facts(self) -> dict:
        """The diffusion model's facts and the prompt language's: the same weights read with
        another vocabulary or slant rule would answer another question."""
        return {**super().model_facts(), "text_vocabulary": list(self.tokenizer.words),
                "text_slant_threshold": self.grammar.slant_threshold,
                "text_holdout": list(self.grammar.holdout)}
