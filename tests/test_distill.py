"""Consistency distillation: the boundary condition, a tiny run that moves the student towards
the teacher's multi-step samples from the same noise, resume, sampling a student checkpoint,
and bad distillation inputs refused in one line."""

from __future__ import annotations

import pytest
import torch
from conftest import compose_config

from diffusion_lab.discretization import KarrasSpacing
from diffusion_lab.distill.consistency import ConsistencyFunction, consistency_coefficients
from diffusion_lab.sampler_spec import SamplerSpec
from diffusion_lab.samplers import heun
from diffusion_lab.samplers.consistency_sampling import ConsistencySpacing, consistency
from diffusion_lab.tasks.build import module_from_checkpoint
from diffusion_lab.tasks.errors import ConfigError
from diffusion_lab.tasks.io import load_checkpoint_file
from diffusion_lab.tasks.train import train

TINY = ["experiment=toy2d_moons", "backbone.hidden=32", "backbone.depth=2",
        "data.module.dataset.n=400", "data.module.batch_size=64"]
QUIET = ["logger=none", "trainer.enable_progress_bar=false", "eval.enabled=false",
         "callbacks=none", "trainer.deterministic=true"]


def test_boundary_condition_identity_at_the_smallest_level():
    """f(x, s_min) = x exactly whatever the network; f -> D well above s_min."""
    net = torch.nn.Linear(4, 4)
    f = ConsistencyFunction(lambda x, s, c: net(x) * 7.0, sigma_min=0.002)
    x = torch.randn(5, 4)
    assert torch.equal(f(x, torch.full((5,), 0.002, dtype=torch.float64)), x)
    c_skip, c_out = consistency_coefficients(torch.tensor([0.002, 5.0], dtype=torch.float64), 0.002)
    assert c_skip[0] == 1 and c_out[0] == 0
    assert c_skip[1] < 2e-4 and c_out[1] > 0.999


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A briefly trained toy teacher and its student distilled for 150 steps."""
    root = tmp_path_factory.mktemp("distill")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(compose_config("train", [*TINY, *QUIET, "trainer.max_steps=200",
                                       "trainer.val_check_interval=100"], root / "teacher"))
        teacher_ckpt = root / "teacher" / "checkpoints" / "last.ckpt"
        student_opts = [*QUIET, "stage=distill", f"distill.teacher_ckpt={teacher_ckpt}",
                        "distill.num_levels=10", "trainer.val_check_interval=50"]
        train(compose_config("train", [*student_opts, "trainer.max_steps=150"], root / "student"))
    finally:
        torch.set_num_threads(before)
    return root, teacher_ckpt, student_opts


def test_distilled_student_gets_closer_to_the_teacher(runs):
    root, teacher_ckpt, _ = runs
    teacher = module_from_checkpoint(load_checkpoint_file(teacher_ckpt))
    student = module_from_checkpoint(load_checkpoint_file(root / "student" / "checkpoints" / "last.ckpt"))
    assert type(student).__name__ == "ConsistencyDistillationModule"
    labels = torch.arange(256) % 2
    # the teacher's ODE over the range distilled (top 80, where the student starts), same noise
    ode = SamplerSpec(heun, KarrasSpacing(sigma_max=80.0), 16)
    want = teacher.sample(labels=labels, seed=5, sampler=ode,
                          guidance_scale=student.teacher_guidance_scale)
    gaps = {}
    for k in (1, 2):
        spec = SamplerSpec(consistency, ConsistencySpacing(sigma_hi=0.8), k)
        trained = student.sample(labels=labels, seed=5, sampler=spec)
        student.ema.model.load_state_dict(teacher.ema.model.state_dict())  # the untrained student
        untrained = student.sample(labels=labels, seed=5, sampler=spec)
        student.load_state_dict(load_checkpoint_file(root / "student" / "checkpoints" / "last.ckpt")["state_dict"])
        gaps[k] = ((trained - want).norm(dim=1).mean().item(), (untrained - want).norm(dim=1).mean().item())
    for k, (trained_gap, untrained_gap) in gaps.items():
        assert trained_gap < 0.7 * untrained_gap, gaps
    print("gaps (trained, untrained) by steps:", gaps)


def test_distillation_resumes_to_the_same_weights(runs, tmp_path):
    _, _, opts = runs
    ckpts = ["++callbacks.checkpoint._target_=lightning.pytorch.callbacks.ModelCheckpoint",
             "++callbacks.checkpoint.dirpath=${paths.checkpoint_dir}",
             "++callbacks.checkpoint.filename='step{step:07d}'", "++callbacks.checkpoint.auto_insert_metric_name=false",
             "++callbacks.checkpoint.save_top_k=-1", "++callbacks.checkpoint.every_n_train_steps=6"]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        base = [*opts, *ckpts, "trainer.max_steps=12", "trainer.val_check_interval=6"]
        train(compose_config("train", base, tmp_path / "ref"))
        mid = tmp_path / "ref" / "checkpoints" / "step0000006.ckpt"
        train(compose_config("train", [*base, f"ckpt_path={mid}"], tmp_path / "resumed"))
    finally:
        torch.set_num_threads(before)
    a = load_checkpoint_file(tmp_path / "ref" / "checkpoints" / "last.ckpt")
    b = load_checkpoint_file(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    assert a["global_step"] == b["global_step"] == 12
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert not any(k.startswith("teacher") for k in a["state_dict"])  # the teacher is not stored
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k


@pytest.mark.parametrize(("overrides", "message"), [
    (["stage=distill"], "stage=distill needs distill.teacher_ckpt=<a trained checkpoint>"),
    (["stage=distill", "distill.teacher_ckpt=/nonexistent.ckpt"], "distill.teacher_ckpt: no such file /nonexistent.ckpt"),
    (["TEACHER", "distill.num_levels=1"], "distill.num_levels must be an integer >= 2, got 1"),
    (["TEACHER", "distill.teacher_solver=rk4"], "distill.teacher_solver must be one of ('heun', 'euler'), got 'rk4'"),
    (["TEACHER", "distill.guidance_scale=-1"], "distill.guidance_scale must be a finite number >= 0"),
    (["TEACHER", "sampler.spacing.sigma_hi=0"], "need 0 < sigma_lo <= sigma_hi < sigma_max"),
])
def test_bad_distillation_inputs_are_refused_in_one_line(runs, tmp_path, overrides, message):
    from diffusion_lab.distill.build import adopt_teacher_config
    from diffusion_lab.tasks.validate import validate_train_config

    _, teacher_ckpt, _ = runs
    if overrides[0] == "TEACHER":
        overrides = ["stage=distill", f"distill.teacher_ckpt={teacher_ckpt}", *overrides[1:]]
    cfg = compose_config("train", [*QUIET, *overrides], tmp_path / "run")
    with pytest.raises(ConfigError) as info:
        adopt_teacher_config(cfg)
        validate_train_config(cfg)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_few_step_rows_draw_the_ddpm_row_and_its_20_nfe_twin_at_their_own_count(monkeypatch):
    """--ddpm-samples-per-class: the DDPM row and a second 20-NFE teacher row at that count (FID
    compares only at equal counts); every other row at the common count."""
    import types

    from diffusion_lab.distill import few_step_report as fsr

    student = types.SimpleNamespace(teacher_guidance_scale=2.0,
                                    sampler=types.SimpleNamespace(spacing=ConsistencySpacing()))
    rows = fsr.student_rows("T", "S", student, steps=[1, 2], ddpm_steps=30, ddpm_samples_per_class=3)
    assert [r[0] for r in rows] == ["student 1-step", "student 2-step", "teacher dpmpp_2m 20",
                                    "teacher dpmpp_2m 20", "teacher ddpm 30"]
    assert [r[4:] for r in rows] == [(), (), (), (3,), (3,)]
    assert rows[-1][2].steps == 30 and all(r[3] == 2.0 for r in rows)
    assert len(fsr.student_rows("T", "S", student, steps=[1], ddpm_steps=30)) == 3

    drawn = []

    def fake_generate(module, labels, n, **kw):
        drawn.append(n)
        return torch.zeros(n, 1, 2, 2)

    class Judge:
        def __call__(self, x, labels, w):
            return {"sample_accuracy": 1.0, "fid_classifier": 0.0}

    monkeypatch.setattr(fsr, "generate_samples", fake_generate)
    monkeypatch.setattr(fsr.SampleJudge, "for_data", staticmethod(lambda *a: Judge()))
    module = types.SimpleNamespace(num_classes=4)
    shown = []
    out = fsr.measure_rows(rows[2:], lambda ckpt: (module, None, "d"), samples_per_class=5,
                           seed=0, cache_dir="unused", on_row=lambda r: shown.append(len(drawn)))
    assert drawn == [20, 12, 12] and [r["samples"] for r in out] == [20, 12, 12]
    assert shown == [1, 2, 3]  # each row shown as soon as it is drawn, not at the end


def test_level_search_keeps_the_lowest_fid_level_and_the_spacings_other_levels():
    """score_levels scores the student's spacing at each candidate sigma_hi (its top and
    sigma_lo kept, sigma_lo lowered below a smaller candidate); best_level is the argmin."""
    import math

    from diffusion_lab.distill.level_search import best_level, candidate_spacings, score_levels

    tried = []

    def score(trial):
        tried.append(trial)
        return {"fid": abs(math.log(trial.sigma_hi / 3.0)), "accuracy": 1.0}

    base = ConsistencySpacing(sigma_max=40.0, sigma_hi=0.8, sigma_lo=0.6)
    rows = score_levels(score, candidate_spacings(base, [0.5, 2.5, 4.0, 12.0]))
    assert [r["sigma_hi"] for r in rows] == [0.5, 2.5, 4.0, 12.0]
    assert best_level(rows) == 2.5  # |log(2.5/3)| < |log(4/3)|
    assert [t.sigma_max for t in tried] == [40.0] * 4
    assert [t.sigma_lo for t in tried] == [0.5, 0.6, 0.6, 0.6]
    with pytest.raises(ValueError):
        best_level([])


@pytest.mark.parametrize("args, message", [
    (["--teacher", "T", "--student", "S", "--tune-levels", "--seed", "7", "--tune-seed", "7"],
     "--tune-seed must differ from --seed"),
    (["--nfe-model", "a=A", "--tune-levels"], "--tune-levels searches a student's levels"),
])
def test_few_step_report_refuses_level_search_on_the_reported_draw(args, message):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "few_step_report.py"
    out = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 2
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_few_step_report_refuses_a_level_at_or_above_the_students_top_before_sampling(runs):
    """A candidate the student's spacing cannot use (here above its top level 80) is refused
    in one line by the spacing's own check, before any sample is drawn."""
    import subprocess
    import sys
    from pathlib import Path

    root, teacher_ckpt, _ = runs
    script = Path(__file__).resolve().parents[1] / "scripts" / "few_step_report.py"
    out = subprocess.run([sys.executable, str(script), "--teacher", str(teacher_ckpt), "--student",
                          str(root / "student" / "checkpoints" / "last.ckpt"), "--tune-levels",
                          "--tune-candidates", "2.5", "100"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "--tune-candidates: need 0 < sigma_lo <= sigma_hi < sigma_max" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "sigma_hi=2.5:" not in out.stdout
