"""Compare runs in one self-contained HTML report (no server, no network).

    python scripts/compare_runs.py RUN_DIR_OR_PARENT... [--out report.html]

Each path is a run directory (with .hydra/config.yaml), a multirun directory or an experiment
directory; every run directory below it is included. The report shows the loss curves, FID and
accuracy against the guidance scale, the final sample grids, the config values that differ and
the final metrics, with every image embedded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diffusion_lab.reports.compare import CompareError, write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path,
                        help="run directories, multirun directories or experiment directories")
    parser.add_argument("--out", type=Path, default=Path("compare_report.html"),
                        help="the HTML file to write (default: compare_report.html)")
    args = parser.parse_args(argv)
    try:
        out = write_report(args.paths, args.out)
    except CompareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(out.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
