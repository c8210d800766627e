"""Recipe 1, a tiny DDPM on 28x28 digits: the loss curve, samples at t in {T, T/2, 0}, and the
full x_t strip of the reverse process (DDPM ancestral sampling over all T steps)."""

from __future__ import annotations

from diffusion_lab.evaluation import describe_sampler
from diffusion_lab.utils.images import save_png
from diffusion_lab.visualization.xt_strips import XtStrips


def run(ctx, sampler, strip_samples: int = 10, strip_columns: int = 11) -> None:
    r = ctx.report
    trained = ctx.train("model")
    module, dm, metrics = trained["module"], trained["datamodule"], trained["metrics"]
    module.sampler = sampler
    png, final = ctx.loss_curves({"train/loss": trained["run_dir"]})
    r.section("Training", f"{metrics['global_step']} steps, {metrics['num_parameters']:,} "
              f"parameters, {metrics['train_seconds']:.0f} s of training.")
    if png:
        r.image(png, "training loss (mean per bin of steps)")
        r.number("final_loss", final["train/loss"])
    strips = {"t = T, T/2, 0": ("strip_3", (1.0, 0.5, 0.0)),
              "full strip": ("strip_full",
                             tuple(1 - i / (strip_columns - 1) for i in range(strip_columns)))}
    real = XtStrips(num_samples=strip_samples).real_batch(dm, strip_samples)
    r.section("Samples along the reverse process",
              f"Sampler: {describe_sampler(sampler)}; row i is class i mod 10 (w = 1), "
              "the same seeds in both figures.")
    for label, (stem, fractions) in strips.items():
        _, images = XtStrips(num_samples=strip_samples, t_fractions=fractions,
                             guidance_scale=1.0).figures(module, real, "end of training")
        for kind in ("reverse_xt", "reverse_x0_hat"):
            image, caption = images[kind]
            r.image(save_png(image, ctx.out_dir / f"{stem}_{kind}.png"), f"{label}: {caption}")
    _evaluation(ctx, metrics)


def _evaluation(ctx, metrics: dict) -> None:
    """The end-of-training evaluation's numbers (accuracy, FID), with their sample counts."""
    keys = ["sample_accuracy", "fid_classifier", "sample_count", "classifier_val_accuracy",
            "fid_classifier_val_vs_train"]
    rows = [[k, metrics[k]] for k in keys if k in metrics]
    if rows:
        ctx.report.section("Evaluation (end of training, w = 1)",
                           "Accuracy: share of class-conditional samples the data classifier "
                           "assigns to their class; FID in its feature space against the real "
                           "training images; the last two rows are the classifier's own accuracy "
                           "and the FID of real held-out images (the floor).")
        ctx.report.table(["metric", "value"], rows)
        for k, v in rows:
            ctx.report.number(k, v)
