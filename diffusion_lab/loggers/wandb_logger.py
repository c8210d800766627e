"""W&B logger factory: offline when no API key is configured, online otherwise."""

from __future__ import annotations

import netrc
import os
from pathlib import Path


def wandb_is_logged_in() -> bool:
    """True when an API key is available (WANDB_API_KEY or a netrc entry for the W&B host)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        auth = netrc.netrc().authenticators("api.wandb.ai")
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return bool(auth and auth[2])


def wandb_logger(
    save_dir: str,
    project: str = "diffusion-lab",
    name: str | None = None,
    group: str | None = None,
    entity: str | None = None,
    tags: list[str] | None = None,
    offline: bool | None = None,
    resume_id: str | None = None,
    **kwargs,
):
    """Build Lightning's WandbLogger; ``offline=None`` means offline unless logged in.

    WANDB_MODE=offline/online in the environment wins over the automatic choice.
    ``resume_id``: the run id stored in the checkpoint a run resumes from; the W&B run then
    continues that run (``resume="allow"``: a fresh run with that id if it never synced).
    """
    if resume_id:
        kwargs.update(id=resume_id, resume="allow")
    from lightning.pytorch.loggers import WandbLogger

    mode = os.environ.get("WANDB_MODE")
    if offline is None:
        offline = mode in ("offline", "dryrun") or (mode != "online" and not wandb_is_logged_in())
    if offline:
        os.environ.setdefault("WANDB_MODE", "offline")
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    # Processes started by ddp_spawn attach to this run; without WANDB_DIR they stage media
    # under ./wandb of the working directory instead of the run's own files.
    os.environ["WANDB_DIR"] = str(Path(save_dir).resolve())
    return WandbLogger(
        save_dir=save_dir,
        project=project,
        name=name,
        group=group,
        entity=entity,
        tags=list(tags or []),
        offline=offline,
        **kwargs,
    )
