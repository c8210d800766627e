"""Turn expected failures into one readable line on stderr and a distinct exit status (the
table in ``tasks/exit_status.py``)."""

from __future__ import annotations

import contextlib
import sys

from diffusion_lab.lit.nonfinite import NonFiniteError
from diffusion_lab.lit.signals import Preempted
from diffusion_lab.tasks.exit_status import EXIT_DIVERGED, EXIT_PREEMPTED, EXIT_USER_ERROR
from diffusion_lab.tasks.io import CheckpointError


class ConfigError(ValueError):
    """A config value is of the wrong type or impossible; the message is one line."""

# FileNotFoundError covers missing datasets (the data layer's DatasetNotFoundError).
USER_ERRORS = (ConfigError, CheckpointError, FileNotFoundError)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


@contextlib.contextmanager
def exit_on_user_error(code: int = EXIT_USER_ERROR):
    """Print ``error: <message>`` (or ``preempted: ...``) to stderr and exit with its status."""
    try:
        yield
    except USER_ERRORS as e:
        print(f"error: {_first_line(e)}", file=sys.stderr)
        raise SystemExit(code) from None
    except NonFiniteError as e:
        print(f"error: {_first_line(e)}", file=sys.stderr)
        raise SystemExit(EXIT_DIVERGED) from None
    except Preempted as e:
        print(f"preempted: {_first_line(e)}", file=sys.stderr)
        raise SystemExit(EXIT_PREEMPTED) from None
