"""Recipe 3, DDIM 20 steps vs DDPM 1000 steps on the same model from the same initial noise.

Every sampler starts sample i from the same x_T (the noise of (seed, i), ``diffusion_lab.noise``).
Per sample, against the reference sampler (DDPM over all T steps):

    distance_i = mean over pixels |x_i^sampler - x_i^ref| / 2   (0..1 intensity units),
    same class = the data classifier predicts the same class for both.

For scale, the same numbers for two *independent* draws of the reference sampler (another
seed): what "unrelated samples of the same classes" looks like. As distributions: FID and
accuracy of each sampler's samples (same labels, w = 1).

DDPM draws fresh noise at every step, so from the same x_T it does not reach the same sample
as a deterministic sampler: per sample, "DDIM-20 is almost identical" holds against the
deterministic reference (``deterministic_reference``, DDIM over all T steps: the probability-flow
ODE solved finely), and against DDPM-1000 only as distributions. Both distances are reported."""

from __future__ import annotations

import torch

from diffusion_lab.evaluation import describe_sampler, generate_samples, grid_labels
from diffusion_lab.metrics.classifier import predict_proba


def _compare(judge, x, ref) -> tuple[float, float]:
    dist = float(((x - ref).abs() / 2).flatten(1).mean(1).mean())
    same = float((predict_proba(judge.classifier, x).argmax(1)
                  == predict_proba(judge.classifier, ref).argmax(1)).double().mean())
    return dist, same


def run(ctx, samplers: dict, reference: str = "ddpm_1000", samples_per_class: int = 20,
        seed: int = 0, shown_per_class: int = 1, deterministic_reference: str | None = None) -> None:
    r = ctx.report
    trained = ctx.train("model")
    module, dm = trained["module"], trained["datamodule"]
    samplers = {**samplers, "default": module.sampler}
    for name in (reference, deterministic_reference):
        if name is not None and name not in samplers:
            raise ValueError(f"reference sampler {name!r} not among {sorted(samplers)}")
    det = deterministic_reference
    judge = ctx.judge(dm)
    labels = grid_labels(module.num_classes, samples_per_class)
    n = len(labels)

    def draw(spec, s, name):
        return generate_samples(module, labels, n, seed=s, guidance_scale=1.0, sampler=spec,
                                distributed=False, progress=f"{name} ({spec.steps} steps)")

    xs = {name: draw(spec, seed, name) for name, spec in samplers.items()}
    ref = xs[reference]
    rows = []
    for name, x in xs.items():
        dist, same = _compare(judge, x, ref)
        acc, fid = judge.accuracy(x, labels), judge.fid(x)
        to_det = []
        if det is not None:
            det_dist, det_same = _compare(judge, x, xs[det])
            to_det = [det_dist, det_same]
            r.number(f"{name}/distance_to_{det}", det_dist)
            r.number(f"{name}/same_class_as_{det}", det_same)
        rows.append([name, describe_sampler(samplers[name]), dist, same, *to_det, acc, fid, n])
        r.number(f"{name}/distance_to_{reference}", dist)
        r.number(f"{name}/same_class_as_{reference}", same)
        r.number(f"{name}/accuracy", acc)
        r.number(f"{name}/fid", fid)
    other = draw(samplers[reference], seed + 1, f"{reference}, another seed")
    dist, same = _compare(judge, other, ref)
    rows.append([f"{reference}, seed {seed + 1}", "independent noise (scale)", dist, same,
                 *(["-", "-"] if det is not None else []), judge.accuracy(other, labels),
                 judge.fid(other), n])
    r.number("independent/distance", dist)
    r.number("independent/same_class", same)
    r.number("num_samples", n)
    r.section("Per sample and as distributions",
              f"{n} samples ({samples_per_class} per class, w = 1, seed {seed}); every sampler "
              f"from the same initial noise. Distance: mean absolute pixel difference to the "
              f"{reference} sample from the same noise, in 0..1 intensity units; same class: "
              "share classified alike. The last row pairs two independent draws.")
    det_columns = [f"distance to {det}", "same class"] if det is not None else []
    r.table(["sampler", "settings", f"distance to {reference}", "same class", *det_columns,
             "accuracy", "FID", "samples"], rows)
    if det is not None:
        r.text(f"{reference} draws fresh noise at every step, so from the same initial noise it "
               f"ends as far from the deterministic samplers as an independent draw of itself "
               f"does (last row); the deterministic samplers solve one ODE, and their distance to "
               f"{det} (the ODE solved over all T steps) is what \"almost identical\" means per "
               f"sample. Against {reference} they agree as distributions (FID, accuracy) only.")
    keep = torch.cat([torch.nonzero(labels == c)[:shown_per_class, 0]
                      for c in range(module.num_classes)])
    tiles = torch.cat([x[keep] for x in xs.values()])
    path = ctx.grid(tiles, "samplers_same_noise.png", nrow=len(keep))
    r.image(path, "rows (top to bottom): " + ", ".join(xs) + "; columns: the same initial noise")
