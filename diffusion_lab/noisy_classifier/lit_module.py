"""The Lightning module of the noise-aware classifier stage.

Training step: t ~ U{0..T-1}, eps ~ N(0, I), x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps (the
forward process of the diffusion model it will guide) and

    L = - mean_i log softmax(f_phi(x_t, t))[y_i],

so p_phi(y | x_t, t) approximates the posterior of the class given the noisy image at every
noise level, the quantity whose gradient classifier guidance adds to the score.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from diffusion_lab.diagnostics.schedule_record import schedule_record
from diffusion_lab.schedules import NoiseSchedule

DEFAULT_OPTIMIZER = partial(torch.optim.AdamW, lr=1e-3)


class NoisyClassifierModule(L.LightningModule):
    def __init__(self, classifier: nn.Module, schedule: NoiseSchedule,
                 optimizer: Callable[..., torch.optim.Optimizer] = DEFAULT_OPTIMIZER):
        super().__init__()
        self.classifier = classifier
        self.schedule = schedule
        self.optimizer_factory = optimizer
        # the resolved stage config, stored in checkpoints so a checkpoint rebuilds its model
        self.run_config: dict | None = None
        self._val_generator_seed = 1234

    def losses(self, x0: torch.Tensor, y: torch.Tensor,
               generator: torch.Generator | None = None) -> dict:
        t = torch.randint(0, self.schedule.num_steps, (x0.shape[0],), device=x0.device,
                          generator=generator)
        eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        logits = self.classifier(self.schedule.q_sample(x0, t, eps), t.to(x0.dtype))
        return {"loss": F.cross_entropy(logits, y),
                "accuracy": (logits.argmax(1) == y).float().mean()}

    def training_step(self, batch, batch_idx):
        x0, y = batch
        out = self.losses(x0, y)
        self.log("train/loss", out["loss"], prog_bar=True, on_step=True, on_epoch=False)
        self.log("train/accuracy", out["accuracy"], on_step=True, on_epoch=False)
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        x0, y = batch
        g = torch.Generator(device=x0.device).manual_seed(self._val_generator_seed + batch_idx)
        out = self.losses(x0, y, generator=g)
        n = x0.shape[0]
        self.log("val/loss", out["loss"], prog_bar=True, on_epoch=True, batch_size=n)
        self.log("val/accuracy", out["accuracy"], on_epoch=True, batch_size=n)
        return out["loss"]

    def configure_optimizers(self):
        return self.optimizer_factory(self.classifier.parameters())

    def facts(self) -> dict:
        """What sampling checks before guiding a model with this classifier."""
        c = self.classifier
        return {"class": type(c).__name__, "num_classes": int(c.num_classes),
                "image_shape": [int(c.in_channels), int(c.image_size), int(c.image_size)]}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.run_config is not None:
            checkpoint["diffusion_lab_config"] = self.run_config
        checkpoint["diffusion_lab_noisy_classifier"] = self.facts()
        checkpoint["diffusion_lab_schedule"] = schedule_record(self.schedule)
