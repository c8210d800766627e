"""Train (or load from cache) the project's evaluation classifier and report its accuracy.

    python scripts/train_classifier.py --cache-dir ~/.cache/diffusion_lab            # digits
    python scripts/train_classifier.py --npz data.npz --key mnist-28px --epochs 10

``--npz`` holds ``x`` (N, C, S, S) floats in [-1, 1] and ``y`` (N,) int labels.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from diffusion_lab.metrics import classifier_accuracy, load_or_train_classifier


def _load(npz: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    if npz is None:
        from sklearn.datasets import load_digits

        data = load_digits()
        return (torch.tensor(data.images, dtype=torch.float32)[:, None] / 8 - 1,
                torch.tensor(data.target, dtype=torch.long))
    arrays = np.load(npz)
    return torch.as_tensor(arrays["x"], dtype=torch.float32), torch.as_tensor(arrays["y"]).long()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache-dir", default=".cache/metrics")
    p.add_argument("--npz", default=None, help="x/y arrays; default: sklearn 8x8 digits")
    p.add_argument("--key", default="digits-8px")
    p.add_argument("--held-out", type=float, default=0.2, help="fraction kept for accuracy")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--max-shift", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    x, y = _load(args.npz)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(args.seed))
    n_test = int(args.held_out * len(x))
    test, train = perm[:n_test], perm[n_test:]
    start = time.perf_counter()
    model = load_or_train_classifier(
        x[train], y[train], int(y.max()) + 1, args.cache_dir, args.key, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, width=args.width, max_shift=args.max_shift,
        seed=args.seed)
    print(f"ready in {time.perf_counter() - start:.1f} s; held-out accuracy "
          f"{classifier_accuracy(model, x[test], y[test]):.4f} on {n_test} images")


if __name__ == "__main__":
    main()
