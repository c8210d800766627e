"""Regenerate docs/recipes/ from the newest report of each recipe run:
python scripts/recipes_docs.py [--outputs outputs] [--docs docs/recipes]"""

import argparse
import sys
from pathlib import Path

from diffusion_lab.reports.recipe_docs import write_docs

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--outputs", type=Path, default=Path("outputs"))
    parser.add_argument("--docs", type=Path, default=Path("docs") / "recipes")
    args = parser.parse_args()
    for name, page in write_docs(ROOT / "conf", args.outputs, args.docs).items():
        print(f"{name}: {page if page else 'no finished run found'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
