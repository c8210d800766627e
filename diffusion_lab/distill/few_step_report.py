"""Few-step quality and speed: judge accuracy, FID (the data classifier's features) and
sampling images/s of checkpoints under given samplers, all from the same noise and labels.

Rows are (name, checkpoint, SamplerSpec, guidance scale). The default set for a student and its
teacher (:func:`student_rows`): the student at 1, 2, 4 consistency steps, the guided teacher at
its 20-NFE sampler and, optionally, at 1000-step DDPM. :func:`nfe_rows` gives any checkpoint at
several step counts of one sampler (flow vs eps at NFE 5, 10, 20).
"""

from __future__ import annotations

import time

from diffusion_lab.discretization import LogSNRSpacing, UniformSpacing
from diffusion_lab.evaluation import SampleJudge, generate_samples, grid_labels, sampler_name
from diffusion_lab.sampler_spec import SamplerSpec
from diffusion_lab.samplers import ddpm, dpmpp_2m
from diffusion_lab.samplers.consistency_sampling import ConsistencySpacing, consistency

__all__ = ["measure_rows", "nfe_rows", "student_rows", "student_spacing"]


def student_rows(teacher_ckpt: str, student_ckpt: str, student_module, *, steps=(1, 2, 4),
                 ddpm_steps: int | None = None,
                 ddpm_samples_per_class: int | None = None,
                 spacing: ConsistencySpacing | None = None) -> list[tuple]:
    """The student at ``steps`` consistency steps (``spacing``'s levels, default the student's
    own, e.g. from :mod:`diffusion_lab.distill.level_search`) and the teacher at
    DPM-Solver++(2M) 20 steps (log-SNR spacing: the default sampler), guided at the scale the
    student learned; with ``ddpm_steps``, also the teacher's ancestral DDPM at that many steps.
    ``ddpm_samples_per_class`` draws the DDPM row with fewer samples (it costs ``ddpm_steps``
    NFE per sample); the teacher's 20-NFE row is then repeated at that count, since FID is
    biased by the sample count and only rows of equal count compare."""
    w = student_module.teacher_guidance_scale
    spacing = spacing if spacing is not None else student_spacing(student_module)
    rows = [(f"student {k}-step", student_ckpt, SamplerSpec(consistency, spacing, k), w) for k in steps]
    rows.append(("teacher dpmpp_2m 20", teacher_ckpt, SamplerSpec(dpmpp_2m, LogSNRSpacing(), 20), w))
    if ddpm_steps:
        few = (ddpm_samples_per_class,) if ddpm_samples_per_class else ()
        if few:
            rows.append(("teacher dpmpp_2m 20", teacher_ckpt, SamplerSpec(dpmpp_2m, LogSNRSpacing(), 20),
                         w, *few))
        rows.append((f"teacher ddpm {ddpm_steps}", teacher_ckpt,
                     SamplerSpec(ddpm, UniformSpacing(), ddpm_steps), w, *few))
    return rows


def student_spacing(student_module) -> ConsistencySpacing:
    """The consistency levels the student was configured with (the default ones otherwise)."""
    spacing = getattr(student_module.sampler, "spacing", None)
    return spacing if isinstance(spacing, ConsistencySpacing) else ConsistencySpacing()


def nfe_rows(name: str, ckpt: str, spec_for_nfe, nfes=(5, 10, 20), guidance_scale: float = 1.0) -> list[tuple]:
    """``ckpt`` at each NFE in ``nfes``: ``spec_for_nfe(n)`` -> SamplerSpec."""
    return [(f"{name} {n} NFE", ckpt, spec_for_nfe(n), guidance_scale) for n in nfes]


def measure_rows(rows, load, *, samples_per_class: int, seed: int, cache_dir: str,
                 batch_size: int = 500, on_row=None) -> list[dict]:
    """For each row ``(name, ckpt, spec, w[, samples_per_class])``: samples (labels = every
    class ``samples_per_class`` times, the row's own count if it has one; noise of (seed, i)),
    wall time, accuracy and FID. ``load(ckpt) -> (module, datamodule, data name)``;
    ``on_row(result)`` is called as each row is done (a long report shows its rows as it goes)."""
    out, judges = [], {}
    for name, ckpt, spec, w, *own in rows:
        module, datamodule, data_name = load(ckpt)
        if data_name not in judges:
            judges[data_name] = SampleJudge.for_data(datamodule, cache_dir, data_name)
        labels = grid_labels(module.num_classes, own[0] if own else samples_per_class)
        start = time.perf_counter()
        x = generate_samples(module, labels, len(labels), seed=seed, guidance_scale=w, sampler=spec,
                             batch_size=batch_size, distributed=False, progress=name)
        seconds = time.perf_counter() - start
        scores = judges[data_name](x, labels, w)
        out.append({"name": name, "checkpoint": str(ckpt), "sampler": sampler_name(spec),
                    "spacing": repr(spec.spacing), "steps": spec.steps, "nfe": spec.nfe, "guidance_scale": w,
                    "samples": len(x), "seed": seed, "seconds": round(seconds, 2),
                    "images_per_s": round(len(x) / seconds, 1),
                    "accuracy": round(scores["sample_accuracy"], 4),
                    "fid": round(scores["fid_classifier"], 3)})
        if on_row is not None:
            on_row(out[-1])
    return out
