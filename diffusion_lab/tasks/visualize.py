"""visualize(cfg): checkpoint + sampler -> x_t strips and the animated reverse process.

Writes into the run directory:

    xt_strip_reverse_xt.png, xt_strip_reverse_x0_hat.png, xt_strip_forward.png   the strips
    reverse.gif      the animation (2-D: forward process | points over the denoiser's field;
                     images: x_t | predicted x0), last frame = the samples
    reverse.html     the same frames in a self-contained page, slider over the noise level
    visualize_info.json

The frames come from the same code and the same per-sample seeds as the training callback
(``XtStrips`` with a ``TrajectoryAnimation``): the same ``seed`` gives every sampler the same x_T.
"""

from __future__ import annotations

import time
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from diffusion_lab.evaluation import describe_sampler
from diffusion_lab.tasks.build import (
    adopt_checkpoint_schedule,
    build_sampler,
    module_from_checkpoint,
)
from diffusion_lab.tasks.evaluate import datamodule_from_checkpoint
from diffusion_lab.tasks.io import atomic_write_json, load_checkpoint_file
from diffusion_lab.tasks.schedule_check import check_schedule_agreement
from diffusion_lab.tasks.validate import validate_counts, validate_sample_config, validate_sampling
from diffusion_lab.utils.animation import save_gif, save_html_player
from diffusion_lab.utils.images import save_png
from diffusion_lab.visualization.xt_strips import XtStrips


def visualize(cfg: DictConfig) -> dict:
    validate_sample_config(cfg)
    ckpt = load_checkpoint_file(cfg.ckpt)
    module = module_from_checkpoint(ckpt, path=cfg.ckpt).to(cfg.device)
    check_schedule_agreement(cfg, ckpt, module.schedule, cfg.ckpt)
    adopt_checkpoint_schedule(cfg, ckpt)  # sampler=ddpm: steps = the checkpoint's T
    validate_sampling(cfg, module.schedule, module)
    points = len(module.sample_shape) == 1
    validate_counts(cfg, "num_points" if points else "num_samples")
    module.sampler = build_sampler(cfg, module.schedule)
    strip = XtStrips(num_samples=cfg.num_samples, num_points=cfg.num_points, seed=cfg.seed,
                    guidance_scale=cfg.guidance.scale, t_fractions=list(cfg.t_fractions),
                    animation=instantiate(cfg.animation, _convert_="all") if cfg.animation
                    else None)
    x0_real = strip.real_batch(datamodule_from_checkpoint(ckpt),
                               cfg.num_points if points else cfg.num_samples)
    run_dir = Path(cfg.paths.run_dir)
    where = f"checkpoint step {ckpt.get('global_step')}, seed {cfg.seed}"

    start = time.perf_counter()
    s, images = strip.figures(module, x0_real, where)
    strip_seconds = time.perf_counter() - start
    for name, (image, _) in images.items():
        save_png(image, run_dir / f"xt_strip_{name}.png")

    info = {
        "checkpoint": str(cfg.ckpt),
        "global_step": ckpt.get("global_step"),
        "sampler": describe_sampler(module.sampler),
        "nfe_per_sample": module.sampler.nfe,
        "guidance_scale": cfg.guidance.scale,
        "seed": cfg.seed,
        "num_samples": len(x0_real),
        "columns_t": s["t"],
        "strip_seconds": round(strip_seconds, 2),
    }
    if s["trajectory"] is not None:  # animation=null: the strips only
        info.update(_animate(strip, module, s, x0_real, run_dir, f"{info['sampler']}, {where}",
                             caption=f"{len(x0_real)} samples; {Path(cfg.ckpt).name}"))
    atomic_write_json(info, run_dir / "visualize_info.json")
    print(f"wrote the strips and {info.get('frames', 0)} frames of {info['num_samples']} samples "
          f"to {run_dir} ({info['sampler']}; strips {strip_seconds:.1f}s, animation "
          f"{info.get('animation_seconds', 0):.1f}s)")
    return info


def _animate(strip: XtStrips, module, s: dict, x0_real, run_dir: Path, title: str,
             caption: str) -> dict:
    """reverse.gif and reverse.html from the strips' recorded trajectory."""
    start = time.perf_counter()
    traj = s["trajectory"]
    frames = strip.animation.frames(module, traj, x0_real, s["noise"], s["labels"], title)
    gif = save_gif(frames, run_dir / "reverse.gif", strip.animation.fps)
    page = save_html_player(frames, traj.frame_labels(), run_dir / "reverse.html", title,
                            caption=caption, fps=strip.animation.fps)
    return {"frames": len(frames), "animation_seconds": round(time.perf_counter() - start, 2),
            "gif": str(gif), "html": str(page)}
