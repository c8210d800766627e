"""Recipe 5, a dead timestep embedding: the same model trained with its t-embedding zeroed
(``backbone.zero_time_embedding=true``) beside the healthy one. The loss still falls (the
network learns an average denoiser over all noise levels) but the samples degrade; the
timestep-embedding health check flags the dead one and not the healthy one."""

from __future__ import annotations

from diffusion_lab.diagnostics.time_embedding import health_on_data
from diffusion_lab.evaluation import generate_samples, grid_labels


def run(ctx, grid_per_class: int = 8, seed: int = 0) -> None:
    r = ctx.report
    variants = {"healthy": {}, "dead": {"backbone.zero_time_embedding": True}}
    runs, grids, rows, checks = {}, [], [], {}
    for name, overrides in variants.items():
        trained = ctx.train(name, **overrides)
        m, module = trained["metrics"], trained["module"]
        runs[name] = trained["run_dir"]
        labels = grid_labels(module.num_classes, grid_per_class)
        x = generate_samples(module, labels, len(labels), seed=seed, guidance_scale=1.0,
                             distributed=False, progress=f"grid ({name})")
        grids.append((name, ctx.grid(x, f"samples_{name}.png", nrow=grid_per_class)))
        data = trained["datamodule"].val_set or trained["datamodule"].train_set
        checks[name] = health_on_data(module.ema.model, module.schedule, data.x[:16],
                                      data.y[:16] if module.num_classes > 0 else None)
        rows.append([name, checks[name]["status"], checks[name]["output"],
                     m.get("sample_accuracy", "n/a"), m.get("fid_classifier", "n/a"),
                     m.get("sample_count", 0)])
        r.number(f"{name}/status", checks[name]["status"])
        r.number(f"{name}/output_spread", checks[name]["output"])
        for key in ("sample_accuracy", "fid_classifier", "sample_count"):
            if key in m:
                r.number(f"{name}/{key}", m[key])
    png, final = ctx.loss_curves(runs)
    r.section("Training loss", "Both losses fall: the loss alone does not reveal a network "
              "that cannot see t.")
    if png:
        r.image(png, "training loss, healthy vs zeroed timestep embedding")
    for name, value in final.items():
        r.number(f"{name}/final_loss", value)
    r.section("Samples", "Same seeds, w = 1, one class per row.")
    r.images_side_by_side(grids, f"{grid_per_class} samples per class")
    r.section("Timestep-embedding health and quality",
              "Output spread: relative change of the network output over 8 timesteps at fixed "
              "noisy inputs (0 = ignores t; 'dead' below 1e-3). Accuracy/FID: end-of-training "
              "evaluation.")
    r.table(["run", "t-embedding", "output spread over t", "accuracy", "FID", "samples"], rows)
    layers = list(checks["healthy"]["layers"])
    r.section("Per layer", "Relative spread over t of each block that receives the embedding.")
    r.table(["layer", "healthy", "dead"],
            [[name, checks["healthy"]["layers"][name], checks["dead"]["layers"].get(name, "n/a")]
             for name in layers])
