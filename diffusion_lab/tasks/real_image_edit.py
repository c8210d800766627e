"""What the scripts that edit real images share (interpolate.py, inpaint.py): a pixel-space image
checkpoint opened with its sampler, the validation images it was trained beside, the data
classifier when there is one, and a denoiser that advances a progress bar."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig
from torch import Tensor

from diffusion_lab.tasks.build import checkpoint_sampler, module_from_checkpoint
from diffusion_lab.tasks.errors import ConfigError
from diffusion_lab.tasks.io import load_checkpoint_file


@dataclass
class ImageModel:
    """An opened checkpoint: ``ckpt`` (its dict), ``module``, the sampler ``spec`` and its grid
    ``sigmas``, ``datamodule`` (its image data, same split: a latent model's ``pixel_data``) and
    ``data`` (the validation images, or the training images without a validation split).
    :meth:`encode` / :meth:`decode` move between images and the space the model works in (the
    identity for pixel models, the stored autoencoder for latent ones)."""

    ckpt: dict
    module: object
    spec: object
    sigmas: Tensor
    datamodule: object
    data: object

    @property
    def data_name(self) -> str:
        return self.ckpt["diffusion_lab_config"]["data"]["name"]

    @property
    def labels(self) -> Tensor | None:
        """The images' classes, None for unlabelled data."""
        return self.data.y if self.datamodule.num_classes else None

    def encode(self, images: Tensor) -> Tensor:
        codec = self.module.codec
        return images if codec is None else codec.encode(images)

    def decode(self, x: Tensor) -> Tensor:
        return self.module.decode(x)

    def judge(self, cache_dir):
        """The data classifier's judge, or None where the data cannot be judged."""
        from diffusion_lab.evaluation import SampleJudge, why_not_judgeable

        if why_not_judgeable(self.datamodule):
            return None
        return SampleJudge.for_data(self.datamodule, cache_dir, self.data_name)


def open_image_model(cfg: DictConfig, script: str, latent: bool = True) -> ImageModel:
    """``cfg.ckpt`` rebuilt on ``cfg.device`` with ``cfg.sampler`` checked against its schedule;
    ConfigError (one line naming ``script``) for a non-image checkpoint, and for a latent one
    unless ``latent``."""
    from diffusion_lab.tasks.evaluate import datamodule_from_checkpoint

    ckpt = load_checkpoint_file(cfg.ckpt)
    module = module_from_checkpoint(ckpt, path=cfg.ckpt).to(cfg.device)
    if module.codec is not None and not latent:
        raise ConfigError(f"{script} edits pixel-space models; this checkpoint is a latent model")
    if len(module.sample_shape) != 3:
        raise ConfigError(f"{script} edits images; this checkpoint's samples are shaped "
                          f"{tuple(module.sample_shape)}")
    spec = checkpoint_sampler(cfg, ckpt, module)
    datamodule = datamodule_from_checkpoint(ckpt)
    datamodule = getattr(datamodule, "pixel_data", datamodule)  # a latent model's images
    data = datamodule.val_set if datamodule.val_set is not None else datamodule.train_set
    return ImageModel(ckpt, module, spec, spec.sigmas(module.schedule), datamodule, data)


def counting(denoiser, advance):
    """``denoiser`` calling ``advance()`` once per evaluation (a progress bar's step)."""
    def counted(x, sigma, cond=None):
        advance()
        return denoiser(x, sigma, cond)

    return counted


def pick_images(labels: Tensor | None, count: int, num_classes: int, available: int) -> list[int]:
    """Indices of ``count`` of ``available`` images: classes 0, 1, ... in turn (the first unused
    of each), or the first ``count`` without labels."""
    if labels is None or num_classes == 0:
        if count > available:
            raise ConfigError(f"images={count}: the data has only {available} images")
        return list(range(count))
    by_class = [(labels == c).nonzero()[:, 0].tolist() for c in range(num_classes)]
    used = [0] * num_classes
    out = []
    for k in range(count):
        c = k % num_classes
        if used[c] >= len(by_class[c]):
            raise ConfigError(f"images={count}: the validation split has too few of class {c}")
        out.append(by_class[c][used[c]])
        used[c] += 1
    return out


def write_results(run_dir, rows: Tensor, name: str, info: dict, shown: tuple[str, ...]) -> None:
    """``<name>.png`` (``rows`` (R, C, ...): one grid row per R) and ``<name>_info.json`` (``info``
    with the grid's path) in ``run_dir``; the ``shown`` keys of ``info`` printed."""
    from pathlib import Path

    from diffusion_lab.tasks.io import atomic_write_json
    from diffusion_lab.utils.images import save_grid

    run_dir = Path(run_dir)
    save_grid(rows.flatten(0, 1), run_dir / f"{name}.png", nrow=rows.shape[1],
              upscale=max(1, 32 // rows.shape[-1]))
    info["grid"] = str(run_dir / f"{name}.png")
    atomic_write_json(info, run_dir / f"{name}_info.json")
    for key in shown:
        if key in info:
            print(f"{key}: {info[key]}")
