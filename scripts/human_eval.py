"""Blind side-by-side human evaluation of two sample sets (no server, no network).

    python scripts/human_eval.py make A/samples.npz B/samples.npz --out human_eval [--pairs 50]
    python scripts/human_eval.py tally human_eval/key.json votes.json [more raters' votes.json]

`make` pairs image i of A with image i of B (sample both with the same seed: the same noise and
class), shuffles each pair's sides and writes one self-contained page, index.html, and the
answer key, key.json. Open the page, click the better image of each pair (or "same"), download
votes.json. `tally` counts every rater's votes against the key: each set's wins, ties, A's share
of the decided pairs with its 95% Wilson interval and the sign test's p-value (tally.json beside
the key).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diffusion_lab.reports.human_eval import HumanEvalError, tally, write_page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make", help="write the page and its key")
    make.add_argument("a", type=Path, help="samples.npz of set A")
    make.add_argument("b", type=Path, help="samples.npz of set B")
    make.add_argument("--out", type=Path, default=Path("human_eval"))
    make.add_argument("--pairs", type=int, default=None, help="first N pairs (default: all)")
    make.add_argument("--seed", type=int, default=0, help="the side shuffle's seed")
    make.add_argument("--names", nargs=2, default=["A", "B"], help="the sets' names in the tally")
    count = sub.add_parser("tally", help="count votes against the key")
    count.add_argument("key", type=Path)
    count.add_argument("votes", type=Path, nargs="+")
    args = parser.parse_args(argv)
    try:
        if args.command == "make":
            key = write_page(args.a, args.b, args.out, pairs=args.pairs, seed=args.seed,
                             names=tuple(args.names))
            print(f"{(args.out / 'index.html').resolve()} ({key['pairs']} pairs); "
                  f"key: {args.out / 'key.json'}")
            return 0
        result = tally(args.key, args.votes)
    except HumanEvalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    (args.key.parent / "tally.json").write_text(json.dumps(result, indent=1))
    a, b = result["names"]
    share = result[f"{a}_share"]
    low, high = result[f"{a}_share_95ci"]
    print(f"{a} {result[f'{a}_wins']} - {b} {result[f'{b}_wins']} (same: {result['same']}; "
          f"{len(result['raters'])} rater(s), {result['pairs']} pairs)")
    if share is not None:
        print(f"{a} preferred in {share:.1%} of decided pairs (95% CI {low:.1%}-{high:.1%}); "
              f"sign test p = {result['sign_test_p']:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
