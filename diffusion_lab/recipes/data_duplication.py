"""Recipe 6, training-data duplication and memorisation: a run on a copy of the data where
``count`` images are repeated ``times`` times each (``data/duplicates.py``), then the
memorisation check (``diagnostics.memorization``) on its unconditional samples.

Reported: the share of samples flagged as near-copies (nearest/second-nearest distance ratio
< 1/3, pixel and classifier-feature space), how many of those copy one of the duplicated
images, and the same check on real held-out images (which are no copies: the check's
false-alarm rate), with the grid of sample / nearest-training-image pairs."""

from __future__ import annotations

import torch

from diffusion_lab.data.duplicates import duplicated_indices
from diffusion_lab.diagnostics.memorization import memorization_report
from diffusion_lab.evaluation import generate_samples
from diffusion_lab.evaluation.inspection import memorization


def run(ctx, num_samples: int = 200, seed: int = 0, pairs: int = 16) -> None:
    r = ctx.report
    dup = ctx.cfg.data.module.dataset
    trained = ctx.train("model")
    module, dm = trained["module"], trained["datamodule"]
    plain = _plain_datamodule(ctx, dup.source)
    judge = ctx.judge(plain, ctx.cfg.data.name)
    x = generate_samples(module, None, num_samples, seed=seed, guidance_scale=None,
                         distributed=False, progress="unconditional samples")
    train_x = dm.train_set.x
    found = memorization(judge, x, train_x, ctx.out_dir, pairs=pairs)
    report = memorization_report(x, train_x)
    chosen = _duplicated_images(dup)
    nearest = train_x[report["nearest"]]
    hits = torch.stack([(nearest == img).flatten(1).all(1) for img in chosen]).any(0)
    copies_of_dup = int((report["copies"] & hits).sum())
    held_out = memorization_report(plain.val_set.x, plain.train_set.x)
    r.section("Data", f"{dup.count} images repeated {dup.times} times each: the training data "
              f"holds {len(dm.train_set)} images ({len(plain.train_set)} without the copies).")
    r.section("Memorisation check",
              f"{num_samples} unconditional samples (seed {seed}); a sample is a near-copy when "
              f"its nearest training image is < 1/3 of the distance of the second nearest.")
    r.table(["quantity", "value"], [
        ["near-copies, pixel space", found["copy_share_pixel"]],
        ["near-copies, classifier features", found["copy_share_feature"]],
        ["near-copies whose nearest image is a duplicated one",
         f"{copies_of_dup} of {int(report['copies'].sum())}"],
        ["median ratio d1/d2 (pixels)", found["median_nn_ratio_pixel"]],
        [f"real held-out images flagged (false alarms, {held_out['num_samples']} images)",
         held_out["copy_share"]],
    ])
    for key in ("copy_share_pixel", "copy_share_feature", "median_nn_ratio_pixel"):
        r.number(key, found[key])
    r.number("copies_of_duplicated", copies_of_dup)
    r.number("held_out_copy_share", held_out["copy_share"])
    r.number("num_samples", num_samples)
    if "memorization_pairs_png" in found:
        r.image(found["memorization_pairs_png"],
                "left: sample, right: its nearest training image; most copy-like first")
    if chosen.numel():
        r.image(ctx.grid(chosen, "duplicated_images.png", nrow=len(chosen)),
                "the duplicated training images")


def _plain_datamodule(ctx, source):
    """The data without the copies (same split settings): the judge's and the baseline's."""
    from hydra.utils import instantiate

    cfg = ctx.variant("plain", **{"data.module.dataset": source})
    dm = instantiate(cfg.data.module, _convert_="all")
    dm.setup("fit")
    return dm


def _duplicated_images(dup) -> torch.Tensor:
    """The ``count`` images the duplication chose (the same draw as ``with_duplicates``)."""
    from hydra.utils import instantiate

    data = instantiate(dup.source)()
    return data.x[duplicated_indices(len(data), int(dup.count), int(dup.get("seed", 0)))]
