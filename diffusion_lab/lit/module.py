"""LightningModule composing backbone + noise schedule + objective + EMA.

Training step (DDPM Algorithm 1 with classifier-free label dropout):
    t ~ U{0..T-1}, eps ~ N(0, I), x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps,
    c = null with probability p_drop, loss = w(snr_t) ||target - f(x_t, t, c)||^2.
Sampling always uses the EMA weights through the sigma-space denoiser
D(x, sigma, cond) and the core samplers.

A step with a non-finite loss or gradients is skipped (weights and EMA unchanged) and counted
as ``train/skipped_nonfinite``; see ``nonfinite.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import lightning as L
import torch
from torch import nn

from diffusion_lab.diagnostics.schedule_record import schedule_record
from diffusion_lab.guidance import (
    check_guidance_scale,
    classifier_free,
    drop_labels,
    guidance_scale_problem,
)
from diffusion_lab.lit.compile import CompileOptions
from diffusion_lab.lit.ema import EMA
from diffusion_lab.lit.nonfinite import NonFiniteGuard, grads_finite
from diffusion_lab.objectives import DenoisingObjective
from diffusion_lab.precond import VPDenoiser, clip_denoised
from diffusion_lab.sampler_spec import SamplerSpec
from diffusion_lab.schedules import NoiseSchedule
from diffusion_lab.thresholding import dynamic_threshold

DEFAULT_OPTIMIZER = partial(torch.optim.AdamW, lr=2e-4)


def warmup_lambda(step: int, warmup_steps: int) -> float:
    """Linear learning-rate warm-up factor: min(1, (step + 1) / warmup_steps)."""
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, (step + 1) / warmup_steps)


def warmup_cosine_lambda(step: int, warmup_steps: int, total_steps: int,
                         final_fraction: float) -> float:
    """Warm-up, then cosine decay to ``final_fraction`` of the learning rate at ``total_steps``:

        f(s) = warmup(s)                                         for s < warmup_steps
        f(s) = r + (1 - r) (1 + cos(pi p)) / 2,  p = (s - W) / (total - W) clipped to [0, 1]
    """
    if step < warmup_steps:
        return warmup_lambda(step, warmup_steps)
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))


class DiffusionModule(L.LightningModule):
    def __init__(
        self,
        backbone: nn.Module,
        schedule: NoiseSchedule,
        prediction,
        weighting,
        sampler: SamplerSpec,
        optimizer: Callable[..., torch.optim.Optimizer] = DEFAULT_OPTIMIZER,
        warmup_steps: int = 0,
        lr_decay: str = "constant",
        lr_final_fraction: float = 0.1,
        lr_decay_steps: int | None = None,
        ema_decay: float = 0.999,
        ema_warmup: bool = True,
        label_dropout: float = 0.1,
        num_classes: int = 0,
        guidance_scale: float = 1.0,
        clip_denoised: bool = True,
        max_consecutive_nonfinite: int = 20,
        timesteps=None,
        compile_options: CompileOptions | None = None,
    ):
        super().__init__()
        if not 0.0 <= label_dropout <= 1.0:
            raise ValueError(f"label dropout must be in [0, 1], got {label_dropout}")
        if isinstance(warmup_steps, bool) or int(warmup_steps) != warmup_steps or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an integer >= 0, got {warmup_steps}")
        self.backbone = backbone
        self.ema = EMA(backbone, decay=ema_decay, warmup=ema_warmup)
        self.schedule = schedule
        self.prediction = prediction
        self.objective = DenoisingObjective(schedule, prediction, weighting, timesteps)
        self.sampler = sampler
        self.optimizer_factory = optimizer
        if lr_decay not in ("constant", "cosine"):
            raise ValueError(f"lr_decay must be 'constant' or 'cosine', got {lr_decay!r}")
        if not 0.0 <= lr_final_fraction <= 1.0:
            raise ValueError(f"lr_final_fraction must be in [0, 1], got {lr_final_fraction}")
        if lr_decay == "cosine" and not (lr_decay_steps and lr_decay_steps > 0):
            raise ValueError("lr_decay=cosine decays over trainer.max_steps: set it > 0, "
                             f"got {lr_decay_steps}")
        self.warmup_steps = warmup_steps
        self.lr_decay, self.lr_final_fraction = lr_decay, lr_final_fraction
        self.lr_decay_steps = lr_decay_steps
        self.label_dropout = label_dropout
        self.num_classes = num_classes
        self.guidance_scale = self.check_guidance_scale(guidance_scale)
        self.guidance_rule = None  # rule(denoiser, scale, null_class), set for sampling only
        self.clip_denoised = clip_denoised
        # percentile of Imagen's dynamic thresholding instead of the static clip, set for
        # sampling only (tasks/guidance_setup.py); None: off
        self.dynamic_threshold: float | None = None
        # rule(denoiser, pass_cond) of classifier guidance (guidance.classifier_ckpt), set for
        # sampling only; the classes its classifier knows (labels for unconditional models)
        self.classifier_guidance = None
        self.classifier_classes = 0
        self._val_generator_seed = 1234
        self.nonfinite = NonFiniteGuard(max_consecutive_nonfinite)
        self._loss_finite = True  # all micro-batches of the current optimizer step
        self._skip_step = False
        # torch.compile, in place at first use (lit/compile.py): state_dict keys unchanged
        self.compile_options = compile_options or CompileOptions()
        # The resolved run config (plain dict), stored in checkpoints so a checkpoint
        # alone rebuilds its model for sampling; set by the task that builds the module.
        self.run_config: dict | None = None
        # latent models: the autoencoder and scale samples are decoded with (latent/codec.py)
        self.codec = None

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """What a sample shows: x itself for pixel models, the decoded image for latent ones.
        Every grid, strip and metric calls it (through ``sample``) before looking at samples."""
        return x if self.codec is None else self.codec.decode(x)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.run_config is not None:
            checkpoint["diffusion_lab_config"] = self.run_config
        checkpoint["diffusion_lab_model"] = self.model_facts()
        # the schedule by value, so sampling can check it uses the same one
        checkpoint["diffusion_lab_schedule"] = schedule_record(self.schedule)
        checkpoint["nonfinite"] = self.nonfinite.state_dict()
        if self.codec is not None:
            checkpoint["diffusion_lab_latent"] = self.codec.facts()
        # The W&B run id, so a resumed run continues this one. (After a ddp_spawn run the
        # main process saves with the module detached from its trainer.)
        for logger in self._trainer.loggers if self._trainer is not None else []:
            if type(logger).__name__ == "WandbLogger":
                checkpoint["wandb_run_id"] = logger.version

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.nonfinite.load_state_dict(checkpoint.get("nonfinite", {}))

    # ------------------------------------------------------------------ training
    def on_fit_start(self) -> None:
        self.compile_options.training(self.backbone)

    def _cond(self, y: torch.Tensor) -> torch.Tensor | None:
        return y if self.num_classes > 0 else None

    def condition(self, x0: torch.Tensor, y: torch.Tensor, training: bool) -> torch.Tensor | None:
        """The network's condition for a batch (x0, y): the class ids of a class-conditional
        model (dropped to the null class with probability ``label_dropout`` in training), None
        for an unconditional one. Stages conditioned on something else override it."""
        cond = self._cond(y)
        if training and cond is not None and self.label_dropout > 0:
            cond = drop_labels(cond, self.label_dropout, null_class=self.num_classes)
        return cond

    def training_step(self, batch, batch_idx):
        x0, y = batch
        out = self.objective(self.backbone, x0, self.condition(x0, y, training=True))
        self.log("train/loss", out.loss, prog_bar=True, on_step=True, on_epoch=False)
        # a tensor: no host sync here; the one per step is in on_before_optimizer_step
        self._loss_finite = torch.isfinite(out.loss.detach()) & self._loss_finite
        # what callbacks get as on_train_batch_end(outputs): the per-sample (weighted) losses
        # and their timesteps, beside the loss Lightning optimizes
        return {"loss": out.loss, "per_sample_loss": out.per_sample_loss.detach(),
                "t": out.t.detach()}

    def on_before_optimizer_step(self, optimizer) -> None:
        # Gradients are complete here (accumulated, DDP-averaged, AMP-unscaled), not yet clipped.
        finite = grads_finite(self.backbone.parameters(), also=self._loss_finite)
        if self.trainer.world_size > 1:
            finite = self.trainer.strategy.reduce_boolean_decision(finite, all=True)
        self._loss_finite = True
        self._skip_step = not self.nonfinite.check(finite, self.global_step)
        if self._skip_step:
            optimizer.zero_grad(set_to_none=True)  # the optimizer leaves grad-less weights alone
        self.log("train/skipped_nonfinite", float(self.nonfinite.skipped), on_step=True, on_epoch=False)

    def optimizer_step(self, *args, **kwargs):
        # EMA right after the weights change, before any callback (checkpointing included)
        # sees the step: a checkpoint at global step k always holds the EMA of step k.
        super().optimizer_step(*args, **kwargs)
        if not self._skip_step:
            self.ema.update(self.backbone)
        self._skip_step = False

    def validation_step(self, batch, batch_idx):
        x0, y = batch
        g = torch.Generator(device=x0.device).manual_seed(self._val_generator_seed + batch_idx)
        cond = self.condition(x0, y, training=False)
        out = self.objective(self.ema.model, x0, cond, generator=g)
        self.log("val/loss", out.loss, prog_bar=True, on_epoch=True, batch_size=x0.shape[0])
        return out.loss

    def configure_optimizers(self):
        opt = self.optimizer_factory(self.backbone.parameters())
        factor = partial(warmup_lambda, warmup_steps=self.warmup_steps)
        if self.lr_decay == "cosine":  # over the run's trainer.max_steps
            factor = partial(warmup_cosine_lambda, warmup_steps=self.warmup_steps,
                             total_steps=self.lr_decay_steps, final_fraction=self.lr_final_fraction)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ------------------------------------------------------------------ sampling
    @property
    def conditional(self) -> bool:
        """Whether the network takes a condition that guidance drops to its null (class ids
        here; stages conditioned on something else say so)."""
        return self.num_classes > 0

    def guidance_problem(self, scale, name: str = "guidance scale") -> str | None:
        """Why guidance scale ``scale`` cannot be used with this model, or None."""
        return guidance_scale_problem(scale, conditional=self.conditional,
                                      null_label_trained=self.label_dropout > 0, name=name)

    def check_guidance_scale(self, scale, name: str = "guidance scale") -> float:
        """``float(scale)``, or ValueError: this model cannot be sampled at that scale."""
        return check_guidance_scale(scale, conditional=self.conditional,
                                    null_label_trained=self.label_dropout > 0, name=name)

    def network_denoiser(self, use_ema: bool = True) -> VPDenoiser:
        """D(x, sigma, cond) of the (EMA) network as it is: no guidance, no clipping."""
        net = self.ema.model if use_ema else self.backbone
        return VPDenoiser(self.compile_options.sampling(net, self.device), self.schedule,
                          self.prediction)

    def bounded(self, denoiser):
        """``denoiser`` with its x0 kept where the data lives: dynamic thresholding when set
        for sampling, else the static clip to [-1, 1] of images, else a latent model's range."""
        if self.dynamic_threshold is not None:  # sampling-time (guidance.dynamic_threshold)
            return dynamic_threshold(denoiser, self.dynamic_threshold)
        if self.clip_denoised:
            return clip_denoised(denoiser, -1.0, 1.0)
        if getattr(self.codec, "bound", None):  # latents: the range measured on the data
            return clip_denoised(denoiser, -self.codec.bound, self.codec.bound)
        return denoiser

    def denoiser(self, *, use_ema: bool = True, guidance_scale: float | None = None):
        """D(x, sigma, cond) -> x0_hat for the (EMA) network, guided when conditional."""
        denoiser = self.network_denoiser(use_ema)
        scale = self.guidance_scale if guidance_scale is None else guidance_scale
        if self.guidance_rule is not None:  # interval / autoguidance (guidance_variants)
            denoiser = self.guidance_rule(denoiser, scale, self.num_classes)
        elif self.num_classes > 0:
            denoiser = classifier_free(denoiser, scale, self.num_classes)
        if self.classifier_guidance is not None:  # + s sigma^2 grad log p(y | x, sigma)
            denoiser = self.classifier_guidance(denoiser, self.num_classes > 0)
        return self.bounded(denoiser)

    def sampler_or_default(self, sampler: SamplerSpec | None = None) -> SamplerSpec:
        """``sampler``, or the module's own when None: the one place the default is chosen."""
        return self.sampler if sampler is None else sampler

    @torch.no_grad()
    def sample(
        self,
        num_samples: int | None = None,
        *,
        labels: torch.Tensor | Sequence[int] | None = None,
        sampler: SamplerSpec | None = None,
        guidance_scale: float | None = None,
        seed: int = 0,
        indices: Sequence[int] | None = None,
        use_ema: bool = True,
        callback=None,
        shape: tuple[int, ...] | None = None,
        decode: bool = True,
    ) -> torch.Tensor:
        """Draw samples; sample i uses noise from (seed, indices[i]) whatever the batch.
        ``decode``: images (``self.decode``) rather than the latents a latent model samples."""
        if labels is not None:
            labels = torch.as_tensor(labels, dtype=torch.long, device=self.device)
            num_samples = labels.shape[0]
        if num_samples is None:
            raise ValueError("give num_samples or labels")
        if self.classifier_guidance is not None and labels is None:
            raise ValueError("classifier guidance steers each sample to a class: give labels")
        if self.num_classes > 0 and labels is None:
            # No labels on a conditional model: unconditional samples (null class).
            labels = torch.full((num_samples,), self.num_classes, device=self.device)
            guidance_scale = 0.0
        shape = shape or self.sample_shape
        spec = self.sampler_or_default(sampler)
        was_training = self.training
        self.eval()
        try:
            x = spec.sample(
                self.denoiser(use_ema=use_ema, guidance_scale=guidance_scale),
                self.schedule,
                (num_samples, *shape),
                cond=labels,
                seed=seed,
                indices=indices,
                callback=callback,
                device=self.device,
            )
            return self.decode(x) if decode else x
        finally:
            self.train(was_training)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        bb = self.backbone
        if getattr(bb, "image_size", None) is not None:
            return (bb.in_channels, bb.image_size, bb.image_size)
        return (bb.dim,)

    def model_facts(self) -> dict:
        """What a checkpoint must agree on to load into this model (stored in checkpoints)."""
        return {"backbone": type(self.backbone).__name__, "sample_shape": list(self.sample_shape),
                "num_classes": self.num_classes}

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.backbone.parameters())
