"""The classes and functions a checkpoint's stored config may name as ``_target_``.

A checkpoint carries the config it was trained with, and sampling rebuilds the model from it
with Hydra's ``instantiate``, which calls whatever ``_target_`` names: ``os.system`` in a
checkpoint from someone else would run their command. Before anything stored is instantiated,
every ``_target_`` in it (at any depth) must be

- a class or function defined in one of the project's model-building packages
  (:data:`TRUSTED_PACKAGES`), found by name in that package, or
- one of the named outside classes in :data:`TRUSTED_NAMES` (torch optimizers).

The name is checked before anything is imported, and the object it resolves to is checked
again afterwards, so a path through an imported module (``diffusion_lab.backbones.unet.torch
.load``) does not pass. Anything else is refused with one line naming the target.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Iterator

from diffusion_lab.tasks.io import CheckpointError

# Packages whose constructors only build tensors, modules and plain objects.
TRUSTED_PACKAGES = (
    "diffusion_lab.schedules",
    "diffusion_lab.paths",
    "diffusion_lab.timestep_sampling",
    "diffusion_lab.parametrization",
    "diffusion_lab.weighting",
    "diffusion_lab.backbones",
    "diffusion_lab.sampler_spec",
    "diffusion_lab.samplers",
    "diffusion_lab.discretization",
    "diffusion_lab.data",
)
# ... except these modules (network and archive helpers, not datasets).
UNTRUSTED_MODULES = ("diffusion_lab.data.download",)
TRUSTED_NAMES = frozenset(
    [f"torch.optim.{name}"
     for name in ("SGD", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad",
                  "Adadelta")]
    # the fitted-grid spacing reads <ckpt>.grids.json; the module's fitting and writing
    # functions stay out
    + ["diffusion_lab.optimized_grid.OptimizedSpacing"]
    # autoencoders of latent diffusion: build modules; the pretrained one reads a local
    # diffusers folder (config.json + weights), never a pickle from a checkpoint
    + ["diffusion_lab.autoencoder.kl_autoencoder.KLAutoencoder",
       "diffusion_lab.autoencoder.pretrained.PretrainedAutoencoderKL"]
)


def _within(module_name: str, packages) -> bool:
    return any(module_name == p or module_name.startswith(p + ".") for p in packages)


def _in_trusted_package(module_name: str) -> bool:
    return _within(module_name, TRUSTED_PACKAGES) and not _within(module_name, UNTRUSTED_MODULES)


def _resolve(target: str):
    """Import ``a.b.c`` as attribute ``c`` of module ``a.b`` (no deeper attribute paths)."""
    module_name, _, attr = target.rpartition(".")
    return getattr(importlib.import_module(module_name), attr)


def is_trusted_target(target: object) -> bool:
    """True when ``target`` names an allow-listed class or function (see the module docstring)."""
    if not isinstance(target, str) or not target.isascii():
        return False
    parts = target.split(".")
    if not all(p.isidentifier() and not p.startswith("__") for p in parts):
        return False
    if target in TRUSTED_NAMES:
        return True
    module_name = target.rpartition(".")[0]
    if not _in_trusted_package(module_name):
        return False  # decided on the name alone: nothing outside the project is imported
    try:
        obj = _resolve(target)
    except (ImportError, AttributeError):
        return False
    # defined in a trusted package (re-exports allowed), not a module or object reached through it
    defined_in = getattr(obj, "__module__", None) or ""
    return (inspect.isclass(obj) or inspect.isfunction(obj)) and _in_trusted_package(defined_in)


def targets_in(config, where: str = "") -> Iterator[tuple[str, object]]:
    """Every ``(key path, _target_ value)`` in a nested dict/list config."""
    if isinstance(config, dict):
        for key, value in config.items():
            path = f"{where}.{key}" if where else str(key)
            if key == "_target_":
                yield path, value
            else:
                yield from targets_in(value, path)
    elif isinstance(config, (list, tuple)):
        for i, value in enumerate(config):
            yield from targets_in(value, f"{where}[{i}]")


def check_stored_targets(config: dict, path: str | os.PathLike, sections=None) -> None:
    """Raise CheckpointError (one line) unless every ``_target_`` in ``config`` is trusted.

    ``sections``: the top-level keys that will be instantiated (all of them when None).
    """
    for key in sections if sections is not None else list(config):
        for where, target in targets_in(config.get(key), key):
            if not is_trusted_target(target):
                raise CheckpointError(
                    f"{path}: the config stored in it names {where}={target!r}, which is not "
                    "one of diffusion-lab's own classes: refused, nothing from it was run"
                )
