"""The distillation stage's config: the student module's options, and the teacher's config
(schedule, objective, backbone, data, label dropout) taken over from its checkpoint."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from diffusion_lab.tasks.errors import ConfigError

#: what the student inherits from the teacher's stored config: the same model and data
TEACHER_SECTIONS = ("schedule", "objective", "backbone", "data")


def student_options(distill: DictConfig):
    """(module class, its extra keyword arguments) for ``cfg.distill``."""
    from diffusion_lab.distill.module import ConsistencyDistillationModule

    return ConsistencyDistillationModule, {
        "teacher_ckpt": distill.get("teacher_ckpt"),
        "teacher_guidance_scale": distill.guidance_scale,
        "num_levels": distill.num_levels,
        "rho": distill.rho,
        "sigma_max": distill.sigma_max,
        "teacher_solver": distill.teacher_solver,
        "huber_c": distill.huber_c,
        "sigma_data": distill.sigma_data,
    }


def adopt_teacher_config(cfg: DictConfig) -> None:
    """Give a distillation config the teacher's model sections (ConfigError, one line, when
    ``distill.teacher_ckpt`` is unset, missing or not a diffusion-lab checkpoint)."""
    from diffusion_lab.tasks.build import stored_config
    from diffusion_lab.tasks.io import CheckpointError, load_checkpoint_file

    path = OmegaConf.select(cfg, "distill.teacher_ckpt", default=None)
    if not path:
        raise ConfigError("stage=distill needs distill.teacher_ckpt=<a trained checkpoint>")
    if not Path(str(path)).is_file():
        raise ConfigError(f"distill.teacher_ckpt: no such file {path}")
    try:
        teacher = stored_config(load_checkpoint_file(path, mmap=True), path)
    except CheckpointError as e:
        raise ConfigError(f"distill.teacher_ckpt: {e}") from None
    if teacher.get("distill"):
        raise ConfigError(f"distill.teacher_ckpt: {path} is itself a distilled student")
    if teacher.get("super_resolution"):
        raise ConfigError(f"distill.teacher_ckpt: {path} is a super-resolution model "
                          "(distilling one is not built)")
    if teacher.get("text"):
        raise ConfigError(f"distill.teacher_ckpt: {path} is a text-to-image model "
                          "(distilling one is not built)")
    with open_dict(cfg):
        for key in TEACHER_SECTIONS:
            cfg[key] = teacher[key]
        cfg.guidance.label_dropout = teacher.guidance.label_dropout
        cfg.distill.teacher_ckpt = str(Path(str(path)).resolve())
