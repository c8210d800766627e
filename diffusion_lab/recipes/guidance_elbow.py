"""Recipe 4, classifier-free guidance sweep: w in {1, 3, 5, 7, 10} on the same seeds, one grid
per w, FID (data-classifier features) and accuracy against w, and the elbow of FID vs w found
automatically (``diagnostics.elbow``)."""

from __future__ import annotations

from diffusion_lab.diagnostics.elbow import elbow
from diffusion_lab.evaluation import describe_sampler, generate_samples, grid_labels
from diffusion_lab.utils.images import save_png
from diffusion_lab.utils.plots import line_plot_png


def run(ctx, scales: list, samples_per_class: int = 20, seed: int = 0, grid_per_class: int = 8) -> None:
    r = ctx.report
    scales = sorted(float(w) for w in scales)
    trained = ctx.train("model")
    module, dm = trained["module"], trained["datamodule"]
    judge = ctx.judge(dm)
    labels = grid_labels(module.num_classes, samples_per_class)
    fids, accs, grids = [], [], []
    for w in scales:
        x = generate_samples(module, labels, len(labels), seed=seed, guidance_scale=w,
                             distributed=False, progress=f"w = {w:g}")
        fids.append(judge.fid(x))
        accs.append(judge.accuracy(x, labels))
        keep = [i for i in range(len(labels)) if i % samples_per_class < grid_per_class]
        grids.append((f"w = {w:g}", ctx.grid(x[keep], f"samples_w{w:g}.png", nrow=grid_per_class)))
        r.number(f"fid_w{w:g}", fids[-1])
        r.number(f"accuracy_w{w:g}", accs[-1])
    n = len(labels)
    r.number("num_samples_per_w", n)
    at, strength = elbow(scales, fids)
    r.number("elbow_w", scales[at])
    r.number("elbow_strength", strength)
    r.section("FID and accuracy against w",
              f"{n} samples per w ({samples_per_class} per class), the same seeds (seed {seed}) "
              f"at every w; sampler {describe_sampler(module.sampler)}.")
    r.table(["w", "FID", "accuracy", "samples"],
            [[w, f, a, n] for w, f, a in zip(scales, fids, accs)])
    chart = line_plot_png(scales, {"FID": fids}, "guidance scale w", "FID (classifier features)",
                          f"FID vs w ({n} samples per w); elbow at w = {scales[at]:g}")
    r.image(save_png(chart, ctx.out_dir / "fid_vs_w.png"), "FID against w")
    chart = line_plot_png(scales, {"accuracy": accs}, "guidance scale w", "classifier accuracy",
                          f"accuracy vs w ({n} samples per w)")
    r.image(save_png(chart, ctx.out_dir / "accuracy_vs_w.png"), "accuracy against w")
    r.text(f"**Elbow of FID vs w (automatic, Kneedle): w = {scales[at]:g}** (distance from "
           f"the chord {strength:.2f} in scaled units; 0 would mean no bend).")
    r.section("One grid per w", f"{grid_per_class} samples per class (rows), the same seeds in "
              "every grid.")
    for label, path in grids:
        r.image(path, label)
