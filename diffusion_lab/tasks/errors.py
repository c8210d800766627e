"""Turn user errors into one readable line and a non-zero exit."""

from __future__ import annotations

import contextlib
import sys

from diffusion_lab.tasks.io import CheckpointError
from diffusion_lab.tasks.validate import ConfigError

# FileNotFoundError covers missing datasets (the data layer's DatasetNotFoundError).
USER_ERRORS = (ConfigError, CheckpointError, FileNotFoundError)


@contextlib.contextmanager
def exit_on_user_error(code: int = 2):
    """Print ``error: <message>`` to stderr and exit with ``code`` for a user error."""
    try:
        yield
    except USER_ERRORS as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"error: {msg}", file=sys.stderr)
        raise SystemExit(code) from None
