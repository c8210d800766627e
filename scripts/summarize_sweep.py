"""Summarise a sampling sweep: python scripts/summarize_sweep.py SWEEP_DIR

Writes summary.md / summary.json (one row per job) and fid_vs_nfe.png / fid_vs_w.png into SWEEP_DIR.
"""

import argparse
import sys

from diffusion_lab.reports.sweep_summary import summarize


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("sweep_dir")
    args = p.parse_args(argv)
    try:
        result = summarize(args.sweep_dir)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(result["markdown"])
    for name, path in result["plots"].items():
        if path:
            print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
