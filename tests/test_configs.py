"""Every option of every config group composes, validates and instantiates."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from diffusion_lab.tasks.build import build_callbacks, build_logger, build_module
from diffusion_lab.tasks.validate import ConfigError, validate_train_config

CONF = Path(__file__).resolve().parents[1] / "conf"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


# Groups whose options build a model: the data facts each needs.
DATA_FOR_BACKBONE = {"mlp": "data=toy2d", "unet_mnist": "data=mnist5k"}


@pytest.mark.parametrize("option", options("schedule"))
def test_schedule_options(make_cfg, option):
    cfg = make_cfg(f"schedule={option}")
    schedule = instantiate(cfg.schedule)
    assert schedule.num_steps == cfg.schedule.num_steps
    assert float(schedule.alpha_bars[0]) > float(schedule.alpha_bars[-1])


@pytest.mark.parametrize("option", options("sampler"))
def test_sampler_options(make_cfg, option):
    cfg = make_cfg(f"sampler={option}")
    validate_train_config(cfg)
    spec = instantiate(cfg.sampler, _convert_="all")
    assert spec.steps == cfg.sampler.steps
    assert callable(spec.solver)


@pytest.mark.parametrize("option", options("sampler/spacing"))
def test_spacing_options(make_cfg, option, tmp_path):
    if option == "optimized":  # reads the grids fitted beside the sampled checkpoint
        from diffusion_lab.discretization import LogSNRSpacing
        from diffusion_lab.optimized_grid import grid_file, save_grids
        from diffusion_lab.schedules import cosine_schedule

        ckpt, schedule = tmp_path / "last.ckpt", cosine_schedule()
        save_grids(grid_file(ckpt), {10: LogSNRSpacing()(schedule, 10)}, {})
        cfg = make_cfg("sampler=ddim", "sampler/spacing=optimized", "sampler.steps=10",
                       f"ckpt={ckpt}", config_name="sample")
    else:
        cfg = make_cfg("sampler=ddim", f"sampler/spacing={option}", "sampler.steps=10")
        schedule = instantiate(cfg.schedule)
    spec = instantiate(cfg.sampler, _convert_="all")
    sigmas = spec.spacing(schedule, 10)
    assert len(sigmas) == 11 and float(sigmas[-1]) == 0.0


@pytest.mark.parametrize("objective", options("objective"))
@pytest.mark.parametrize("weighting", options("objective/weighting"))
def test_objective_options(make_cfg, objective, weighting):
    cfg = make_cfg(f"objective={objective}", f"objective/weighting={weighting}")
    pred = instantiate(cfg.objective.prediction)
    w = instantiate(cfg.objective.weighting)
    assert pred.name == objective
    assert w is not None


@pytest.mark.parametrize("option", options("backbone"))
def test_backbone_options(make_cfg, option):
    """Every backbone preset composes; the small ones are built and run a forward pass."""
    import torch

    data = DATA_FOR_BACKBONE.get(option, "data=digits")
    overrides = [data, f"backbone={option}"]
    if option.startswith("dit_") and option != "dit_tiny":
        overrides += ["data.image_size=32", "data.channels=4"]  # the DiT paper's latent shape
    if option.startswith("unet_ddpm"):
        overrides += ["data.image_size=32", "data.channels=3"]
    cfg = make_cfg(*overrides)
    if option in ("unet_small", "unet_mnist", "dit_tiny", "mlp"):
        net = instantiate(cfg.backbone, _convert_="all")
        size = cfg.data.get("image_size", 0)
        shape = (2, 2) if option == "mlp" else (2, cfg.data.channels, size, size)
        x = torch.randn(shape)
        out = net(x, torch.tensor([3.0, 500.0]), torch.tensor([0, 1]))
        assert out.shape == x.shape
    else:
        with torch.device("meta"):
            net = instantiate(cfg.backbone, _convert_="all")
        assert sum(p.numel() for p in net.parameters()) > 1_000_000


@pytest.mark.parametrize("option", options("data"))
def test_data_options(make_cfg, tmp_path, option):
    """Each data option instantiates its DataModule (loading is deferred to setup)."""
    extra = [f"data.module.dataset.root={tmp_path}"] if option == "image_folder" else []
    cfg = make_cfg(f"data={option}", *extra, "backbone=mlp" if option == "toy2d" else "backbone=unet_small")
    dm = instantiate(cfg.data.module, _convert_="all")
    assert dm.batch_size == cfg.data.module.batch_size


@pytest.mark.parametrize("option", options("trainer"))
def test_trainer_options(make_cfg, option):
    import torch

    cfg = make_cfg(f"trainer={option}")
    if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        assert cfg.trainer.devices >= 1
        return
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    assert trainer.max_steps == cfg.trainer.max_steps


@pytest.mark.parametrize("option", options("logger"))
def test_logger_options(make_cfg, option):
    cfg = make_cfg(f"logger={option}")
    logger = build_logger(cfg)
    if option == "none":
        assert logger is False
    else:
        assert type(logger).__name__.lower().startswith(option[:3])


@pytest.mark.parametrize("option", options("callbacks"))
def test_callback_options(make_cfg, option):
    cfg = make_cfg(f"callbacks={option}")
    cbs = build_callbacks(cfg)
    assert len(cbs) == len([c for c in (cfg.callbacks or {}).values() if c])


@pytest.mark.parametrize("option", options("guidance"))
def test_guidance_options_build_module(make_cfg, option):
    cfg = make_cfg(f"guidance={option}")
    validate_train_config(cfg)
    module = build_module(cfg)
    assert module.label_dropout == cfg.guidance.label_dropout


@pytest.mark.parametrize("option", options("debug") + options("experiment"))
def test_presets_compose(make_cfg, option):
    group = "debug" if (CONF / "debug" / f"{option}.yaml").exists() else "experiment"
    cfg = make_cfg(f"{group}={option}")
    if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        # validation builds the Trainer, which refuses a GPU this machine lacks
        with pytest.raises(ConfigError, match="trainer: "):
            validate_train_config(cfg)
        cfg = make_cfg(f"{group}={option}", "trainer.accelerator=cpu")
    from diffusion_lab.latent.stage import is_latent, make_latent_config

    if is_latent(cfg):  # as train() does: the backbone is built for the latents' shape
        make_latent_config(cfg)
    validate_train_config(cfg)
