"""2-D views and animations of the reverse process: what each picture contains.

The 2-D checks run on the exact Gaussian denoiser (diffusion_lab/oracle.py) behind a small
module stand-in, so every point's place is known to be right; image checks use an untrained
U-Net (the plumbing is under test); one tiny MLP checkpoint drives the README commands.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_config
from PIL import Image
from test_train import FAST, SMALL_UNET

from diffusion_lab.callbacks import XtStrip
from diffusion_lab.discretization import LogSNRSpacing
from diffusion_lab.loggers import media
from diffusion_lab.noise import initial_noise
from diffusion_lab.oracle import GaussianOracle
from diffusion_lab.sampler_spec import SamplerSpec
from diffusion_lab.samplers import dpmpp_2m
from diffusion_lab.schedules import cosine_schedule
from diffusion_lab.tasks.build import build_module
from diffusion_lab.tasks.errors import exit_on_user_error
from diffusion_lab.tasks.sample import sample
from diffusion_lab.tasks.train import train
from diffusion_lab.tasks.visualize import visualize
from diffusion_lab.utils.animation import html_player, save_gif
from diffusion_lab.utils.images import make_grid
from diffusion_lab.utils.plots import header_height
from diffusion_lab.utils.plots2d import scatter_row_figure, split_outside, square_limits
from diffusion_lab.visualization.animation import TrajectoryAnimation, image_frames

ROOT = Path(__file__).resolve().parents[1]
N = 300


class OracleModule:
    """What XtStrip and TrajectoryAnimation use of a DiffusionModule, with the exact D* of
    N(mean, diag(std^2)) 2-D data and two classes (the labels do not change D*)."""

    def __init__(self, sampler: SamplerSpec, num_classes: int = 2):
        self.oracle = GaussianOracle(torch.tensor([0.5, -0.3]), torch.tensor([0.8, 0.4]))
        self.schedule, self.sampler, self.num_classes = cosine_schedule(), sampler, num_classes
        self.sample_shape, self.device, self.field_calls = (2,), torch.device("cpu"), 0

    def denoiser(self, guidance_scale=None):
        def d(x, sigma, cond=None):
            self.field_calls += 1
            return self.oracle(x, sigma)
        return d

    def sample(self, num_samples=None, *, labels=None, sampler=None, guidance_scale=None,
               seed=0, callback=None, decode=True):  # a data-space model: decoding is identity
        n = len(labels) if labels is not None else num_samples
        spec = sampler or self.sampler
        return spec.sample(self.oracle, self.schedule, (n, 2), seed=seed, callback=callback)


def run_sampler(steps: int = 12) -> SamplerSpec:
    return SamplerSpec(dpmpp_2m, LogSNRSpacing(), steps)


def drawn(fig) -> list[tuple[np.ndarray, np.ndarray, tuple, tuple]]:
    """Per panel: offsets of the 'points' and 'outside' artists, and the axes limits."""
    out = []
    for ax in fig.axes:
        by_gid = {c.get_gid(): np.asarray(c.get_offsets()) for c in ax.collections}
        out.append((by_gid["points"], by_gid["outside"], ax.get_xlim(), ax.get_ylim()))
    return out


def assert_all_inside(points: np.ndarray, n: int, xlim, ylim) -> None:
    assert points.shape == (n, 2)
    assert np.isfinite(points).all()
    assert (points[:, 0] >= xlim[0]).all() and (points[:, 0] <= xlim[1]).all()
    assert (points[:, 1] >= ylim[0]).all() and (points[:, 1] <= ylim[1]).all()


# ----------------------------------------------------------------------------- x_t strips, 2-D


def test_2d_strip_panels_draw_every_sample_finite_and_within_the_axes():
    module = OracleModule(run_sampler())
    x0 = module.oracle.mean.float() + module.oracle.std.float() * torch.randn(
        N, 2, generator=torch.Generator().manual_seed(0))
    cb = XtStrip(num_points=N, seed=1)
    s = cb.strips(module, x0)
    # The strip follows the run's own sampler: its last column is the samples the run's
    # sample grid gets from the same seeds (the broken strip re-sampled on a uniform grid).
    labels = torch.arange(N) % 2
    torch.testing.assert_close(s["reverse_xt"][-1], module.sample(labels=labels, seed=1))
    assert s["t"][0] == 999 and s["t"][-1] == 0 and s["t"] == sorted(s["t"], reverse=True)
    for name in ("reverse_xt", "reverse_x0_hat", "forward"):
        fig = scatter_row_figure([c.numpy() for c in s[name]], [f"t={t}" for t in s["t"]],
                                 labels=labels.numpy())
        panels = drawn(fig)
        assert len(panels) == 5
        for inside, outside, xlim, ylim in panels:
            assert_all_inside(inside, N, xlim, ylim)
            assert len(outside) == 0


def test_points_outside_the_axes_are_drawn_on_the_border_and_counted():
    points = np.array([[0.0, 0.0], [50.0, 1.0], [np.nan, 0.0], [-1.0, -2.0]])
    inside, border = split_outside(points, (-3.0, 3.0))
    assert inside.tolist() == [True, False, False, True]
    np.testing.assert_array_equal(border, [[3.0, 1.0], [3.0, 0.0]])
    fig = scatter_row_figure([points], ["t=0"], limits=(-3.0, 3.0))
    ((shown, crosses, xlim, _),) = drawn(fig)
    assert len(shown) == 2 and len(crosses) == 2
    assert np.abs(crosses).max() <= xlim[1]
    assert "2 of 4 outside the axes" in fig.axes[0].get_title()


# ----------------------------------------------------------------------------- animations


def test_2d_animation_frames_hold_every_point_within_the_axes():
    steps, n = 12, 200
    module = OracleModule(run_sampler(steps))
    x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(2)) * 0.5
    anim = TrajectoryAnimation(max_frames=8, field_grid=5)
    cb = XtStrip(num_points=n, seed=0, animation=anim)
    s = cb.strips(module, x0)
    traj = s["trajectory"]
    frame_steps = anim.frame_steps(steps)
    assert frame_steps[0] == 0 and len(frame_steps) == 7  # max_frames - 1 levels + the samples
    assert traj.sigmas[-1] == 0 and len(traj.x) == 8
    torch.testing.assert_close(traj.x[-1], s["reverse_xt"][-1])
    # frame 0 is the prior draw x_T in the VP scale
    torch.testing.assert_close(traj.x[0], initial_noise((n, 2), seed=0), atol=1e-5, rtol=1e-5)

    frames = anim.frames(module, traj, x0, s["noise"], s["labels"], title="oracle")
    assert len(frames) == 8 and len({f.shape for f in frames}) == 1
    assert module.field_calls == 1  # the field of every level in one batched call
    assert len(anim.drawn) == 8
    for panels in anim.drawn:  # per frame: forward and reverse panels
        for inside, outside, xlim, ylim in panels:
            assert_all_inside(inside, n, xlim, ylim)
            assert len(outside) == 0
    # The last frame's reverse panel shows the samples themselves.
    np.testing.assert_allclose(anim.drawn[-1][1][0], traj.x[-1].numpy(), rtol=1e-6)
    # The forward panel at sigma = 0 is the real data.
    np.testing.assert_allclose(anim.drawn[-1][0][0], x0.numpy(), rtol=1e-6)


def test_denoiser_field_points_to_the_exact_posterior_mean():
    module = OracleModule(run_sampler())
    grid = np.array([[1.0, 1.0], [-2.0, 0.5]])
    sigma = 0.7
    field = TrajectoryAnimation.fields(module, grid, [sigma, 0.0])
    x = torch.tensor(grid) * math.sqrt(1 + sigma**2)
    expected = module.oracle.denoise(x, torch.tensor(sigma)).numpy() - grid
    np.testing.assert_allclose(field[0], expected, rtol=1e-5)
    assert (field[1] == 0).all()  # D(x, 0) = x
    capped = TrajectoryAnimation.fields(module, grid, [sigma], cap=0.1)
    np.testing.assert_allclose(np.linalg.norm(capped[0], axis=1),
                               np.minimum(np.linalg.norm(expected, axis=1), 0.1), rtol=1e-5)


def test_image_animation_last_frame_is_the_samplers_output(make_cfg):
    module = build_module(make_cfg(*SMALL_UNET, "sampler.steps=3"))
    n = 5
    x0 = torch.rand(n, 1, 8, 8) * 2 - 1
    cb = XtStrip(seed=4, animation=TrajectoryAnimation())
    traj = cb.strips(module, x0)["trajectory"]
    frames = image_frames(traj)
    assert len(frames) == 3 + 1
    samples = module.sample(labels=torch.arange(n) % module.num_classes, seed=4)
    grid = make_grid(samples, nrow=3, upscale=4)
    band = header_height(["x_t"])
    last = frames[-1]
    np.testing.assert_array_equal(last[band:, :grid.shape[1], 0], grid[..., 0])
    np.testing.assert_array_equal(last[band:, -grid.shape[1]:, 0], grid[..., 0])
    # the first frame's left grid is the prior draw x_T (VP scale)
    first = make_grid(initial_noise((n, 1, 8, 8), seed=4), nrow=3, upscale=4)
    np.testing.assert_array_equal(frames[0][band:, :grid.shape[1], 0], first[..., 0])


def test_html_page_embeds_its_frames_and_fetches_nothing():
    frames = [np.full((6, 9, 3), 40 * k, np.uint8) for k in range(4)]
    page = html_player(frames, [f"sigma = {k}" for k in range(4)], "title <x>", fps=2)
    uris = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(uris) == 4
    for frame, uri in zip(frames, uris):
        decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri))).convert("RGB"))
        np.testing.assert_array_equal(decoded, frame)
    assert 'type="range"' in page and 'max="3"' in page and "sigma = 3" in page
    assert "title &lt;x&gt;" in page
    assert not re.search(r"https?:|//[a-z]|<link|src=\"[^d]", page, re.IGNORECASE)


def test_log_animation_writes_gif_and_page(tmp_path):
    trainer = types.SimpleNamespace(default_root_dir=str(tmp_path), loggers=[], global_rank=0)
    frames = [np.full((10, 12, 3), v, np.uint8) for v in (0, 100, 200)]
    out = media.log_animation(trainer, "xt_strip/animation", frames, 7, ["a", "b", "c"])
    assert out["gif"] == tmp_path / "media" / "xt_strip_animation" / "step0000007.gif"
    gif = Image.open(out["gif"])
    assert gif.n_frames == 3 and gif.size == (12, 10)
    assert out["html"].read_text().count("data:image/png;base64,") == 3
    rank1 = types.SimpleNamespace(default_root_dir=str(tmp_path / "r1"), loggers=[], global_rank=1)
    assert media.log_animation(rank1, "k", frames, 7, ["a", "b", "c"]) is None
    with pytest.raises(ValueError, match="one shape"):
        save_gif([frames[0], np.zeros((3, 3, 3), np.uint8)], tmp_path / "x.gif")


# ----------------------------------------------------------------------------- commands


@pytest.fixture(scope="module")
def moons_ckpt(tmp_path_factory) -> Path:
    """A 4-step two-moons MLP checkpoint (tiny widths)."""
    run_dir = tmp_path_factory.mktemp("moons") / "run"
    cfg = compose_config("train", ["experiment=toy2d_moons", "backbone.hidden=32",
                                   "backbone.depth=2", "data.module.dataset.n=512", *FAST,
                                   "callbacks.xt_strip.num_points=40",
                                   "callbacks.sample_grid.num_points=30",
                                   "callbacks.xt_strip.animation.max_frames=3",
                                   "callbacks.xt_strip.animation.field_grid=3"], run_dir)
    train(cfg)
    return run_dir


@pytest.mark.slow
def test_training_run_logs_2d_views_with_their_point_counts(moons_ckpt):
    media_dir = moons_ckpt / "media"
    gif = Image.open(media_dir / "xt_strip_animation" / "step0000004.gif")
    assert gif.n_frames == 3  # first level, one more, the samples
    html = (media_dir / "xt_strip_animation" / "step0000004.html").read_text()
    assert html.count("data:image/png;base64,") == 3
    for name in ("samples_grid", "xt_strip_reverse_xt", "xt_strip_forward"):
        assert (media_dir / name / "step0000004.png").is_file()


def run_script(script: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), *args], cwd=cwd, capture_output=True,
                          text=True, check=False)


def readme_commands(script: str) -> list[list[str]]:
    """Every ``python scripts/<script> ...`` line of the README, as arguments after python."""
    text = (ROOT / "README.md").read_text()
    return [m.split("#")[0].split()[1:]
            for m in re.findall(rf"^python scripts/{script}.*$", text, re.MULTILINE)]


@pytest.mark.slow
def test_readme_visualize_commands_run_at_tiny_size(moons_ckpt, tmp_path):
    """Both README lines, with the tiny checkpoint and tiny sizes: one sampler, then two
    samplers in a multirun from the same noise."""
    ckpt = moons_ckpt / "checkpoints" / "last.ckpt"
    single, multi = readme_commands("visualize.py")
    tiny = ["num_points=40", "sampler.steps=4", "animation.field_grid=3", "seed=5"]

    def run(args, where: str):
        args = [f"ckpt={ckpt}" if a.startswith("ckpt=") else a for a in args[1:]]
        proc = run_script(ROOT / single[0], *args, *tiny, where, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]

    run(single, f"hydra.run.dir={tmp_path / 'one'}")
    assert "-m" in multi and "sampler=ddim,dpmpp" in multi
    run(multi, f"hydra.sweep.dir={tmp_path / 'two'}")
    outs = [tmp_path / "one", tmp_path / "two" / "0", tmp_path / "two" / "1"]
    infos = [json.loads((out / "visualize_info.json").read_text()) for out in outs]
    for out, info in zip(outs, infos):
        assert info["frames"] == 4 + 1 and info["num_samples"] == 40
        assert Image.open(out / "reverse.gif").n_frames == 5
        assert (out / "reverse.html").read_text().count("data:image/png;base64,") == 5
        for name in ("reverse_xt", "reverse_x0_hat", "forward"):
            assert (out / f"xt_strip_{name}.png").is_file()
    assert [i["sampler"].split(",")[0] for i in infos] == ["ddim", "ddim", "dpmpp_2m"]
    # Same seed and sampler: the same animation; same seed, other sampler: the same x_T, so
    # the first frames' reverse panels (right half) agree.
    assert (outs[0] / "reverse.gif").read_bytes() == (outs[1] / "reverse.gif").read_bytes()
    first = [np.asarray(Image.open(out / "reverse.gif").convert("RGB")) for out in outs[1:]]
    right = first[0].shape[1] // 2
    assert (first[0][:, right:] == first[1][:, right:]).mean() > 0.95



@pytest.mark.slow
def test_bad_counts_are_refused_in_one_line_before_any_sampling(moons_ckpt, tmp_path, capsys):
    ckpt = moons_ckpt / "checkpoints" / "last.ckpt"
    for name, task in (("visualize", visualize), ("sample", sample)):
        cfg = compose_config(name, [f"ckpt={ckpt}", "num_points=0"], tmp_path / name)
        with pytest.raises(SystemExit) as exit_info, exit_on_user_error():
            task(cfg)
        assert exit_info.value.code == 2
        assert capsys.readouterr().err.strip().splitlines() == [
            "error: num_points must be >= 1, got 0"]
        assert not (tmp_path / name).exists()


@pytest.mark.slow
def test_sample_py_draws_num_points_for_2d_checkpoints(moons_ckpt, tmp_path):
    ckpt = moons_ckpt / "checkpoints" / "last.ckpt"
    tmp_path.mkdir(exist_ok=True)
    sample(compose_config("sample", [f"ckpt={ckpt}", "num_points=50", "sampler.steps=3"],
                          tmp_path))
    saved = np.load(tmp_path / "samples.npz")
    assert saved["x"].shape == (50, 2) and np.isfinite(saved["x"]).all()
    assert np.bincount(saved["labels"]).tolist() == [25, 25]


def test_step_clock_leaves_out_the_callbacks_own_work(monkeypatch):
    from diffusion_lab.callbacks import xt_strip

    now = iter([0.0, 1.0, 2.0, 12.0, 13.0, 14.5])
    monkeypatch.setattr(xt_strip.time, "perf_counter", lambda: next(now))
    clock = xt_strip.StepClock()
    for k in range(6):
        clock.tick()
        if k == 2:
            clock.pause()  # the callback's work between t=2 and t=12 is not a training step
    assert clock.times == [1.0, 1.0, 1.0, 1.5] and clock.median() == 1.0


def test_sample_grid_of_2d_data_draws_num_points_coloured_by_class(tmp_path, monkeypatch):
    from diffusion_lab.callbacks import sample_grid

    drawn_args = {}

    def record(points, title="", labels=None, limits=None):
        drawn_args.update(points=points, labels=labels, limits=limits)
        return np.zeros((4, 4, 3), np.uint8)

    monkeypatch.setattr(sample_grid, "scatter_png", record)
    module = OracleModule(run_sampler())
    real = module.oracle.mean.float() + module.oracle.std.float() * torch.randn(
        500, 2, generator=torch.Generator().manual_seed(3))
    dm = types.SimpleNamespace(train_set=real, real_batch=lambda n, split, seed=0: real[:n])
    trainer = types.SimpleNamespace(is_global_zero=True, global_step=3, datamodule=dm, loggers=[],
                                    default_root_dir=str(tmp_path), global_rank=0)
    sample_grid.SampleGrid(num_points=301).make(trainer, module)
    points, labels, limits = drawn_args["points"], drawn_args["labels"], drawn_args["limits"]
    assert points.shape == (302, 2) and np.bincount(labels).tolist() == [151, 151]
    assert limits == square_limits(real.numpy())  # axes from the real data, not the samples
    inside, _ = split_outside(points, limits)
    assert inside.all()
