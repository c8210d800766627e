"""Config checks that run before anything is built: one readable line per problem."""

from __future__ import annotations

from numbers import Real

from omegaconf import DictConfig, OmegaConf


class ConfigError(ValueError):
    """A config value is of the wrong type or impossible; the message is one line."""


def _get(cfg: DictConfig, key: str):
    return OmegaConf.select(cfg, key, default=None)


def _int(cfg, key: str, minimum: int = 1):
    v = _get(cfg, key)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"{key} must be an integer >= {minimum}, got {v!r}")
    if v < minimum:
        raise ConfigError(f"{key} must be >= {minimum}, got {v}")
    return v


def _real(cfg, key: str, lo: float | None = None, hi: float | None = None, hi_open=False):
    v = _get(cfg, key)
    if isinstance(v, bool) or not isinstance(v, Real):
        raise ConfigError(f"{key} must be a number, got {v!r}")
    if lo is not None and v < lo:
        raise ConfigError(f"{key} must be >= {lo}, got {v}")
    if hi is not None and (v >= hi if hi_open else v > hi):
        bound = f"< {hi}" if hi_open else f"<= {hi}"
        raise ConfigError(f"{key} must be {bound}, got {v}")
    return v


def _target(cfg, key: str) -> str:
    return str(_get(cfg, f"{key}._target_") or "")


def validate_sampling(cfg: DictConfig, num_steps: int) -> None:
    """Sampler and guidance values (shared by training and the sampling CLI)."""
    steps = _int(cfg, "sampler.steps")
    continuous = _target(cfg, "sampler.spacing").endswith(("LogSNRSpacing", "KarrasSpacing"))
    if not continuous and steps > num_steps:
        raise ConfigError(f"sampler.steps={steps} exceeds the schedule's {num_steps} timesteps")
    _real(cfg, "guidance.scale", lo=0.0)
    eta = _get(cfg, "sampler.solver.eta")
    if eta is not None:
        _real(cfg, "sampler.solver.eta", lo=0.0, hi=1.0)


def validate_train_config(cfg: DictConfig) -> None:
    """Raise ConfigError for the first wrong type or impossible value found."""
    _int(cfg, "trainer.max_steps")
    _int(cfg, "data.module.batch_size")
    _real(cfg, "data.module.val_fraction", lo=0.0, hi=1.0, hi_open=True)
    num_steps = _int(cfg, "schedule.num_steps", minimum=2)
    validate_sampling(cfg, num_steps)
    _real(cfg, "guidance.label_dropout", lo=0.0, hi=1.0)
    _real(cfg, "module.optimizer.lr", lo=0.0)
    if _get(cfg, "module.optimizer.lr") == 0:
        raise ConfigError("module.optimizer.lr must be > 0, got 0")
    _real(cfg, "module.ema_decay", lo=0.0, hi=1.0, hi_open=True)
    _int(cfg, "module.warmup_steps", minimum=0)
    if _get(cfg, "module.max_consecutive_nonfinite") is not None:
        _int(cfg, "module.max_consecutive_nonfinite")
    if _get(cfg, "resume") not in (None, False, True, "auto"):
        raise ConfigError(f"resume must be auto or false, got {_get(cfg, 'resume')!r}")

    num_classes = _int(cfg, "data.num_classes", minimum=0)
    if num_classes == 0 and _get(cfg, "guidance.scale") != 1.0:
        raise ConfigError(
            f"guidance.scale={_get(cfg, 'guidance.scale')} needs a class-conditional dataset, "
            f"but data={_get(cfg, 'data.name')} has no labels (use guidance.scale=1)"
        )

    if _get(cfg, "schedule.zero_terminal_snr") and _target(cfg, "objective.prediction").endswith(
        "EpsPrediction"
    ):
        raise ConfigError(
            "schedule.zero_terminal_snr=true cannot be used with eps prediction "
            "(x0 = (x_T - sqrt(1-ab) eps)/sqrt(ab) divides by zero at the last step); "
            "use objective=v or objective=x0"
        )

    _check_backbone_shape(cfg)
    if _get(cfg, "eval.enabled"):
        _int(cfg, "eval.samples_per_class")


def _check_backbone_shape(cfg: DictConfig) -> None:
    target = _target(cfg, "backbone")
    size = _get(cfg, "backbone.image_size")
    if size is None:
        return
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"backbone.image_size must be a positive integer, got {size!r}")
    if target.endswith("UNet"):
        mult = _get(cfg, "backbone.channel_mult") or []
        factor = 2 ** (len(mult) - 1)
        if size % factor:
            raise ConfigError(
                f"image size {size} is not divisible by {factor}, the downsampling factor of a "
                f"U-Net with channel_mult of length {len(mult)}"
            )
        levels = [size // 2**i for i in range(len(mult))]
        for res in _get(cfg, "backbone.attention_resolutions") or []:
            if res not in levels:
                raise ConfigError(
                    f"backbone.attention_resolutions has {res}, but this U-Net's feature maps "
                    f"are {levels} at image size {size}"
                )
    elif target.endswith("DiT"):
        patch = _get(cfg, "backbone.patch_size")
        if not isinstance(patch, int) or patch < 1 or size % patch:
            raise ConfigError(
                f"image size {size} is not divisible by the DiT patch size {patch!r}"
            )


def validate_counts(cfg: DictConfig, *keys: str) -> None:
    """Each of ``keys`` an integer >= 1 (sample, point and frame counts)."""
    for key in keys:
        _int(cfg, key)
