"""Recipe 2, linear vs cosine noise schedule at equal training steps: the sample grids side by
side, the loss curves, and FID / classifier accuracy of each with their sample counts."""

from __future__ import annotations

from diffusion_lab.evaluation import generate_samples, grid_labels
from diffusion_lab.presets import schedule_preset


def run(ctx, schedules: list, grid_per_class: int = 8, seed: int = 0) -> None:
    r = ctx.report
    runs, rows, grids = {}, [], []
    presets = {name: schedule_preset(name, ctx.cfg.schedule.num_steps) for name in schedules}
    for name, schedule in presets.items():
        trained = ctx.train(name, schedule=schedule)
        m, module = trained["metrics"], trained["module"]
        runs[name] = trained["run_dir"]
        labels = grid_labels(module.num_classes, grid_per_class)
        x = generate_samples(module, labels, len(labels), seed=seed, guidance_scale=1.0,
                             distributed=False, progress=f"grid ({name})")
        grids.append((name, ctx.grid(x, f"samples_{name}.png", nrow=grid_per_class)))
        rows.append([name, m["global_step"], m.get("sample_accuracy", "n/a"),
                     m.get("fid_classifier", "n/a"), m.get("sample_count", 0)])
        for key in ("sample_accuracy", "fid_classifier", "sample_count"):
            if key in m:
                r.number(f"{name}/{key}", m[key])
    r.section("Sample grids", "Same seeds for both models, w = 1, one class per row.")
    r.images_side_by_side(grids, f"{grid_per_class} samples per class of each model")
    r.section("Quality", "Accuracy and FID (data-classifier features) at the end of training, "
              "from the same evaluation seeds.")
    r.table(["schedule", "steps", "accuracy", "FID", "samples"], rows)
    png, final = ctx.loss_curves(runs)
    if png:
        r.section("Training loss", "The eps-prediction loss is not comparable in absolute terms "
                  "across schedules (different noise levels per t); its shape is.")
        r.image(png, "training loss of each schedule")
    for name, _ in grids:
        if name in final:
            r.number(f"{name}/final_loss", final[name])
    _evaluation_note(ctx, m)


def _evaluation_note(ctx, metrics: dict) -> None:
    """The judge's own reliability, once (the same classifier judges every model)."""
    if "classifier_val_accuracy" in metrics:
        ctx.report.text(f"The judge: {metrics['classifier_val_accuracy']:.1%} accurate on the "
                        f"{metrics.get('classifier_val_count', '?')} held-out real images; FID of "
                        f"those real images {metrics['fid_classifier_val_vs_train']:.3g} (the floor).")
        ctx.report.number("classifier_val_accuracy", metrics["classifier_val_accuracy"])
