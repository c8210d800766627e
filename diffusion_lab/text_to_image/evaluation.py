"""How well samples follow their prompts (what CLIP score measures for text-to-image models,
here with the captions' own rules, which are known exactly):

* slant adherence: the fraction of samples whose measured slant bin (``text.captions``) is the
  one their prompt asks for, among prompts that name a slant, with its 3 x 3 confusion
  (asked x measured) and the rate chance alone would give (the data's slant proportions);
* class accuracy: the fraction the data's classifier (the judge) assigns to the class the prompt
  names, and FID in its features (scripts/sample.py's metrics).

Sample k of prompt p has index p K + k (K samples per prompt): it depends only on (seed, p, k).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from diffusion_lab.text.captions import SLANT_NAMES, SLANT_PHRASES, CaptionGrammar, slant_bins
from diffusion_lab.utils.progress import progress_bar


def default_prompts(grammar: CaptionGrammar) -> list[str]:
    """Every class with every slant phrase: "zero slanted left", "zero upright", ..."""
    return [grammar.text(k, s) for k in range(grammar.num_classes) for s in range(len(SLANT_NAMES))]


@torch.no_grad()
def generate_for_prompts(module, prompts: Sequence[str], *, samples_per_prompt: int, seed: int,
                         sampler=None, guidance_scale: float | None = None, batch_size: int = 500,
                         progress: str | None = None, negative_prompt: str | None = None) -> Tensor:
    """(P K, C, H, W) samples, prompt-major, from the EMA weights, in batches (guided against
    ``negative_prompt`` instead of the empty prompt when given)."""
    prompts = [p for p in prompts for _ in range(samples_per_prompt)]
    spec = module.sampler_or_default(sampler)
    batches = range(0, len(prompts), batch_size)
    out = []
    with progress_bar(progress, len(batches) * spec.steps) as advance:
        for start in batches:
            idx = list(range(start, min(start + batch_size, len(prompts))))
            out.append(module.generate([prompts[i] for i in idx], sampler=spec,
                                       guidance_scale=guidance_scale, seed=seed, indices=idx,
                                       callback=lambda info: advance(),
                                       negative_prompt=negative_prompt).cpu())
    return torch.cat(out)


def prompt_adherence(grammar: CaptionGrammar, prompts: Sequence[str], samples: Tensor,
                     samples_per_prompt: int, judge=None, data_images: Tensor | None = None,
                     data_labels: Tensor | None = None) -> dict:
    """Slant adherence (+ its confusion, + its chance rate from the data; split into held-out
    and seen combinations when prompts name held-out ones), the measured slant shares (left,
    upright, right) and, with ``judge``, class accuracy and FID of ``samples`` (prompt-major,
    ``samples_per_prompt`` each).

    The chance rate is the adherence of samples that follow the class but ignore the slant:
    the mean over samples of P_data(slant bin = asked | class = named), from ``data_images``
    and ``data_labels`` (P_data(slant bin = asked) where a prompt names no class)."""
    parsed = [grammar.parse(p) for p in prompts]  # once per prompt, then per sample
    asked = [a for a in parsed for _ in range(samples_per_prompt)]
    report: dict = {"t2i_prompts": len(prompts), "t2i_samples_per_prompt": samples_per_prompt,
                    "t2i_samples": len(samples)}
    measured = slant_bins(samples, grammar.slant_threshold)
    report["t2i_slant_shares"] = (torch.bincount(measured, minlength=3).double()
                                  / max(1, len(measured))).tolist()  # left, upright, right
    with_slant = [i for i, (_, s) in enumerate(asked) if s is not None]
    if with_slant:
        want = torch.tensor([asked[i][1] for i in with_slant])
        got = measured[with_slant]
        confusion = torch.zeros(3, 3, dtype=torch.long)
        confusion.index_put_((want, got), torch.ones_like(want), accumulate=True)
        report.update({"t2i_slant_adherence": float((want == got).double().mean()),
                       "t2i_slant_confusion": confusion.tolist(),
                       "t2i_slant_names": list(SLANT_NAMES)})
        held = torch.tensor([grammar.is_held_out(*asked[i]) for i in with_slant])
        if held.any():  # combinations never named in training, and the others
            report["t2i_slant_adherence_heldout"] = float((want == got)[held].double().mean())
            report["t2i_slant_adherence_seen"] = float((want == got)[~held].double().mean()) \
                if (~held).any() else None
        if data_images is not None and data_labels is not None:
            report["t2i_slant_chance"] = slant_chance(
                grammar, [asked[i] for i in with_slant], data_images, data_labels)
    with_class = [i for i, (c, _) in enumerate(asked) if c is not None]
    if judge is not None and with_class:
        labels = torch.tensor([asked[i][0] for i in with_class])
        report["t2i_class_accuracy"] = judge.accuracy(samples[with_class], labels)
        if len(samples) >= 2:
            report["fid_classifier"] = judge.fid(samples)
    return report


def slant_chance(grammar: CaptionGrammar, asked: Sequence[tuple[int | None, int]],
                 data_images: Tensor, data_labels: Tensor) -> float:
    """Mean over ``asked`` (class or None, slant bin) of P_data(bin | class)."""
    bins = slant_bins(data_images, grammar.slant_threshold)
    labels = data_labels.long()
    overall = torch.bincount(bins, minlength=3).double() / len(bins)
    table = {}
    for c in {c for c, _ in asked if c is not None}:
        mine = bins[labels == c]
        table[c] = torch.bincount(mine, minlength=3).double() / max(1, len(mine))
    return float(sum(float((overall if c is None else table[c])[s]) for c, s in asked) / len(asked))


def prompt_grid(samples: Tensor, samples_per_prompt: int, columns: int) -> tuple[Tensor, int]:
    """The first ``columns`` samples of every prompt, one prompt per row."""
    columns = min(columns, samples_per_prompt)
    rows = samples.reshape(-1, samples_per_prompt, *samples.shape[1:])[:, :columns]
    return rows.reshape(-1, *samples.shape[1:]), columns


__all__ = ["SLANT_PHRASES", "default_prompts", "generate_for_prompts", "prompt_adherence",
           "prompt_grid", "slant_chance"]
