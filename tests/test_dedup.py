"""Dedup: exact and near-duplicates dropped (the first of each group kept), distinct items kept,
on the real digits with copies injected the way the duplication recipe does."""

import pytest
import torch

from diffusion_lab.data.arrays import ArrayDataset
from diffusion_lab.data.dedup import deduplicated, keep_mask
from diffusion_lab.data.digits import digits
from diffusion_lab.data.duplicates import with_duplicates


def test_injected_exact_copies_are_dropped_and_nothing_else():
    data = digits()
    dup = with_duplicates(data, count=4, times=50, seed=0)
    assert len(dup) == len(data) + 200
    out = deduplicated(dup)  # exact duplicates only
    # the 8x8 digits hold a few exact duplicates of their own: dedup finds those too
    own = int((~keep_mask(data.x)).sum())
    assert len(out) == len(data) - own
    # the first occurrence stays: the kept items are the original ones, in order
    keep = keep_mask(dup.x)
    assert not keep[len(data):].any() and int(keep[:len(data)].sum()) == len(data) - own
    assert torch.equal(out.y, data.y[keep_mask(data.x)])


def test_near_copies_within_the_distance_go_and_the_rest_stay():
    g = torch.Generator().manual_seed(0)
    base = torch.rand(20, 1, 8, 8, generator=g) * 2 - 1
    near = (base[:5] + 0.01 * torch.randn(5, 1, 8, 8, generator=g)).clamp(-1, 1)  # RMS ~0.01
    x = torch.cat([base, near])
    rms = ((near - base[:5]).flatten(1) ** 2).mean(1).sqrt()
    assert float(rms.max()) < 0.02
    keep = keep_mask(x, max_distance=0.02)
    assert keep[:20].all() and not keep[20:].any()
    assert keep_mask(x, max_distance=0.0).all()  # no exact duplicates
    # a pair of distinct random images is ~0.8 apart: a loose threshold keeps them apart
    assert keep_mask(base, max_distance=0.5).all()
    data = ArrayDataset(x, torch.arange(25) % 3)
    out = deduplicated(data, max_distance=0.02)
    assert len(out) == 20 and torch.equal(out.y, data.y[:20]) and "dedup" in out.name


def test_greedy_keeps_the_first_of_a_chain_and_what_it_does_not_reach():
    # 0 -- 1 -- 2 on a line, 0.03 apart (RMS): 1 is within 0.04 of 0 and dropped; 2 is 0.06
    # from 0, the only kept item before it, so it stays (a dropped item drops nothing)
    x = torch.zeros(3, 4)
    x[1] += 0.03
    x[2] += 0.06
    assert keep_mask(x, max_distance=0.04).tolist() == [True, False, True]


@pytest.mark.parametrize("bad", [-1.0, float("nan"), "x"])
def test_bad_distance_is_refused(bad):
    with pytest.raises(ValueError, match="max_distance must be a finite number >= 0"):
        keep_mask(torch.zeros(3, 4), bad)


def test_unlabelled_data():
    x = torch.rand(10, 2) * 2 - 1
    data = ArrayDataset(torch.cat([x, x[:3]]), None, value_range=None)
    out = deduplicated(data)
    assert len(out) == 10 and out.num_classes == 0


def test_the_datamodule_option_dedups_before_the_split(make_cfg):
    """data.module.dedup=0 on the duplication recipe's data: the copies are gone from both
    splits, so no validation image is a copy of a training image."""
    from diffusion_lab.tasks.build import build_datamodule

    source = ["data.module.dataset._target_=diffusion_lab.data.duplicates.with_duplicates",
              "+data.module.dataset.source._target_=diffusion_lab.data.digits.digits",
              "+data.module.dataset.source._partial_=true", "+data.module.dataset.count=4",
              "+data.module.dataset.times=50"]
    plain = build_datamodule(make_cfg(*source))
    plain.setup("fit")
    deduped = build_datamodule(make_cfg(*source, "data.module.dedup=0"))
    deduped.setup("fit")
    n_plain = len(plain.train_set) + len(plain.val_set)
    n_dedup = len(deduped.train_set) + len(deduped.val_set)
    assert n_plain == 1797 + 200 and n_dedup == 1797 - int((~keep_mask(digits().x)).sum())
    def leaks(dm):  # validation images that are copies of training images
        train = {tuple(r) for r in dm.train_set.x.flatten(1).tolist()}
        return sum(tuple(r) in train for r in dm.val_set.x.flatten(1).tolist())

    assert leaks(plain) > 0 and leaks(deduped) == 0


def test_duplicates_of_unlabelled_points_keep_their_values_and_no_labels():
    """with_duplicates on 2-D points (no value range, no labels): the copies are appended as
    they are, and the result stays unlabelled."""
    from diffusion_lab.data.arrays import ArrayDataset
    from diffusion_lab.data.duplicates import duplicated_indices, with_duplicates

    g = torch.Generator().manual_seed(0)
    points = ArrayDataset(3 * torch.randn(10, 2, generator=g), None, num_classes=0,
                          value_range=None)
    out = with_duplicates(points, count=2, times=3)
    assert len(out) == 16 and out.num_classes == 0
    chosen = duplicated_indices(10, 2)
    assert torch.equal(out.x[10:], points.x[chosen.repeat(3)])
