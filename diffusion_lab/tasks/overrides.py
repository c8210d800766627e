"""Refuse a command line whose overrides do not compose, in one line and before any work.

Hydra reports an unknown group option (``schedule=foo``) or key (``trainer.max_stepz=3``) in
several lines and exits 1; in a multirun sweep it finds a bad value only when it reaches that
job, after the jobs before it have trained (locally) or been submitted (SLURM). This check
composes the config once per job shape the command line asks for, with Hydra's own compose
API, before anything heavy is imported:

- run mode: the overrides as given;
- ``-m`` / ``--multirun``: every value of every discrete sweep (``a=x,y``, ``range(...)``,
  ``choice(...)``, ``glob(...)``) is composed once, the other sweeps at their first value.
  That finds each value's own errors in len(x) + len(y) + ... - (sweeps - 1) compositions
  (~0.1 s each) instead of the product of the sizes a full sweep runs.

A failure is printed as ``error: <override>: <Hydra's message on one line>`` with exit status
2 (the bad-input status of ``tasks/exit_status.py``). Anything the check cannot judge (other
Hydra flags such as ``--cfg`` or ``-cn``, interval sweeps, an unexpected exception) is left to
Hydra: the check only refuses what composition itself refuses.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from diffusion_lab.presets import CONF_DIR
from diffusion_lab.tasks.exit_status import EXIT_USER_ERROR

_MULTIRUN_FLAGS = ("-m", "--multirun")


def _one_line(text: str) -> str:
    """Hydra's multi-line message as one line (blank lines and tabs folded)."""
    parts = [line.strip() for line in text.splitlines()]
    return " ".join(p for p in parts if p and not p.startswith(("Config search path", "provider=")))


def _message(error: Exception) -> str:
    from hydra.errors import MissingConfigException

    if isinstance(error, MissingConfigException) and error.options:
        first = str(error).split("\n\n")[0].strip()
        return f"{_one_line(first)}; options: {', '.join(error.options)}"
    text = _one_line(str(error))
    cause = error.__cause__
    if cause is not None and str(cause).strip():
        text = f"{text} ({str(cause).strip().splitlines()[0]})"
    return text


class _SweepWithoutMultirun(ValueError):
    pass


def _jobs(overrides: list, multirun: bool) -> list[tuple[str, list[str]]] | None:
    """(the override to blame, the override strings of one composition) per job to check; None
    where the sweeps cannot be expanded here (the check then leaves the command to Hydra)."""
    plain = [o.input_line for o in overrides if not o.is_sweep_override()]
    sweeps = [o for o in overrides if o.is_sweep_override()]
    if not sweeps:
        return [("", plain)]
    if not multirun:
        raise _SweepWithoutMultirun(
            f"{sweeps[0].input_line}: several values sweep only with -m (--multirun); "
            "a list is key=[a,b], a string key='a,b'")
    if any(not o.is_discrete_sweep() for o in sweeps):
        return None  # interval sweeps (sweeper plugins such as Optuna) are the sweeper's to judge
    values = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] for o in sweeps]
    first = [v[0] for v in values]
    jobs = [(" ".join(first), plain + first)]
    for i, options in enumerate(values):
        for option in options[1:]:
            jobs.append((option, plain + first[:i] + [option] + first[i + 1:]))
    return jobs


def override_error(config_name: str, args: Sequence[str], config_dir: Path = CONF_DIR) -> str | None:
    """The one-line reason the command line ``args`` does not compose ``config_name``, or None
    when it composes (or when the check cannot judge it and leaves it to Hydra)."""
    flags = [a for a in args if a.startswith("-")]
    if any(f not in _MULTIRUN_FLAGS for f in flags):
        return None
    try:
        return _first_error(config_name, [a for a in args if not a.startswith("-")],
                            multirun=bool(flags), config_dir=config_dir)
    except _SweepWithoutMultirun as e:
        return str(e)
    except Exception:  # noqa: BLE001 - the check never stands in the way of what Hydra accepts
        return None


def _first_error(config_name: str, lines: list[str], multirun: bool, config_dir: Path) -> str | None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import ConfigCompositionException, OverrideParseException

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            # with the config loader, glob(...) sweeps expand to the group's options
            parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
            try:
                jobs = _jobs(parser.parse_overrides(lines), multirun)
            except OverrideParseException as e:
                return _one_line(str(e))
            for blame, job in jobs or []:
                try:
                    compose(config_name, overrides=job, return_hydra_config=True)
                except (ConfigCompositionException, OverrideParseException) as e:
                    return f"{blame}: {_message(e)}" if blame else _message(e)
    finally:
        GlobalHydra.instance().clear()
    return None


def refuse_unless_composable(config_name: str, args: Sequence[str] | None = None) -> None:
    """Exit 2 with ``error: <override>: <reason>`` on stderr when the command line's overrides
    (every sweep value under ``-m``) do not compose ``config_name``; return otherwise."""
    message = override_error(config_name, sys.argv[1:] if args is None else args)
    if message:
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR)
