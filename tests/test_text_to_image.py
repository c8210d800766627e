"""Text-to-image diffusion: the captions' slant against its closed form, the tokenizer and the
grammar, cross-attention against its formula (padding never reaches the image), the
context-conditioned U-Net and DiT, classifier-free guidance against the empty prompt, and the
stage from the command line (training, its report, text_to_image.py, the refusals)."""

from __future__ import annotations

import itertools
import json
import math
import os

import pytest
import torch
from conftest import compose_config, refusal_line

from diffusion_lab.backbones import DiT, UNet
from diffusion_lab.backbones.cross_attention import CrossAttention, masked_mean
from diffusion_lab.backbones.text_conditioned import TextConditioned
from diffusion_lab.backbones.text_encoder import TextEncoder
from diffusion_lab.text import CaptionGrammar, WordTokenizer, slant, slant_bins
from diffusion_lab.text_to_image.evaluation import prompt_adherence, slant_chance


def _stroke(k: float, size: int = 28, rows=range(4, 24), r0: float = 14.0, c0: float = 14.0):
    """A one-pixel stroke c = c0 + k (r0 - r), its ink split linearly between the two columns
    around c, so E[c | r] is exactly c0 + k (r0 - r): slant = k."""
    x = -torch.ones(1, 1, size, size, dtype=torch.float64)
    for r in rows:
        c = c0 + k * (r0 - r)
        lo = math.floor(c)
        x[0, 0, r, lo] += 2 * (1 - (c - lo))
        x[0, 0, r, lo + 1] += 2 * (c - lo)
    return x


def test_slant_is_the_strokes_shear_exactly():
    for k in (-0.4, -0.1, 0.0, 0.25, 0.5):
        assert abs(float(slant(_stroke(k))[0]) - k) < 1e-9
    # a stroke shifted or placed elsewhere leans the same; a thicker one too
    assert abs(float(slant(_stroke(0.3, c0=10.0, rows=range(2, 20)))[0]) - 0.3) < 1e-9
    thick = _stroke(0.3) + _stroke(0.3, c0=15.0) + 1  # the two strokes' ink added
    assert abs(float(slant(thick)[0]) - 0.3) < 1e-9
    strokes = torch.cat([_stroke(k) for k in (-0.3, -0.1, 0.1, 0.3)])
    assert slant_bins(strokes, 0.15).tolist() == [0, 1, 1, 2]
    assert slant_bins(strokes, 0.05).tolist() == [0, 0, 2, 2]


def test_the_tokenizer_pads_and_refuses_unknown_words_and_long_prompts():
    tok = WordTokenizer(["seven", "left"], max_length=3)
    assert tok.vocab_size == 3
    assert tok.encode(["Seven, left.", ""]).tolist() == [[1, 2, 0], [0, 0, 0]]
    assert tok.decode([2, 1, 0]) == "left seven"
    with pytest.raises(ValueError, match="unknown word 'cat'.*knows: seven left"):
        tok.encode(["seven cat"])
    with pytest.raises(ValueError, match="4 words; the model reads at most 3"):
        tok.encode(["seven seven seven left"])
    with pytest.raises(ValueError, match="distinct single words"):
        WordTokenizer(["seven", "seven"], 3)


def test_the_grammar_builds_the_tokens_of_its_own_text():
    grammar = CaptionGrammar()
    for k, s, numeral, with_slant, article in itertools.product(
            range(10), range(3), (False, True), (False, True), (False, True)):
        tokens = grammar.tokens(torch.tensor([k]), torch.tensor([s]), torch.tensor([numeral]),
                                torch.tensor([with_slant]), torch.tensor([article]))
        text = grammar.text(k, s if with_slant else None, numeral, article)
        assert torch.equal(tokens, grammar.tokenizer.encode([text])), text
        assert grammar.parse(text) == (k, s if with_slant else None)
    assert grammar.text(8, 0, numeral=True, article=True) == "an 8 slanted left"
    assert grammar.text(7, 1, article=True) == "a seven upright"
    # random captions: each image's own class and slant, the options at their rates
    images = torch.cat([_stroke(k).float() for k in (-0.3, 0.0, 0.3)]).repeat(1000, 1, 1, 1)
    labels = torch.arange(3).repeat(1000)
    ids = grammar.captions(labels, images, generator=torch.Generator().manual_seed(0))
    texts = [grammar.tokenizer.decode(row) for row in ids.tolist()]
    parsed = [grammar.parse(t) for t in texts]
    assert all(c == int(y) for (c, _), y in zip(parsed, labels))
    slants = [s for _, s in parsed]
    assert abs(slants.count(None) / 3000 - 0.25) < 0.03
    assert all(s in (None, int(b)) for s, b in zip(slants, slant_bins(images, 0.15)))
    assert abs(sum(any(w.isdigit() for w in t.split()) for t in texts) / 3000 - 0.5) < 0.03
    assert abs(sum(t.split()[0] in ("a", "an") for t in texts) / 3000 - 0.5) < 0.03


def test_held_out_combinations_are_never_named_in_training():
    grammar = CaptionGrammar(holdout=["seven slanted left", "an 8 upright"])
    assert grammar.is_held_out(7, 0) and grammar.is_held_out(8, 1)
    assert not grammar.is_held_out(7, 1) and not grammar.is_held_out(None, 0)
    left, upright = (_stroke(k, 8, range(1, 7), 4.0, 4.0).float() for k in (-0.3, 0.0))
    images = torch.cat([left, upright, left, upright]).repeat(500, 1, 1, 1)
    labels = torch.tensor([7, 7, 8, 8]).repeat(500)
    texts = [grammar.tokenizer.decode(r) for r in
             grammar.captions(labels, images, generator=torch.Generator().manual_seed(0)).tolist()]
    parsed = [grammar.parse(t) for t in texts]
    assert all(c == int(y) for (c, _), y in zip(parsed, labels))  # the class is still named
    said = {(c, s) for c, s in parsed}
    assert (7, 0) not in said and (8, 1) not in said  # the held-out pairs never
    assert (7, 1) in said and (8, 0) in said  # the others as before
    full = [grammar.tokenizer.decode(r) for r in grammar.full_captions(labels[:4], images[:4])
            .tolist()]
    assert full == ["seven", "seven upright", "eight slanted left", "eight"]
    with pytest.raises(ValueError, match="names a class and a slant"):
        CaptionGrammar(holdout=["seven"])
    # the report splits adherence into held-out and seen combinations
    samples = torch.cat([left] * 2 + [upright] * 2).float()
    report = prompt_adherence(grammar, ["seven slanted left", "seven upright"], samples, 2)
    assert report["t2i_slant_adherence_heldout"] == 1.0
    assert report["t2i_slant_adherence_seen"] == 1.0
    report = prompt_adherence(grammar, ["seven slanted left", "seven upright"], samples.flip(0), 2)
    assert report["t2i_slant_adherence_heldout"] == 0.0 and report["t2i_slant_adherence"] == 0.0


def test_cross_attention_is_its_formula_and_never_sees_padding():
    torch.manual_seed(0)
    attn = CrossAttention(dim=8, context_dim=6, num_heads=2)
    torch.nn.init.normal_(attn.proj.weight)  # zero at init: the block starts as the identity
    x, context = torch.randn(2, 5, 8), torch.randn(2, 4, 6)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    out = attn(x, context, mask)
    # softmax(Q K^T / sqrt(d_h) + M) V W_o per head, written out
    q = attn.q(x).reshape(2, 5, 2, 4).transpose(1, 2)
    k, v = attn.kv(context).reshape(2, 4, 2, 2, 4).permute(2, 0, 3, 1, 4)
    logits = q @ k.transpose(-1, -2) / 2.0 + torch.where(mask, 0.0, -math.inf)[:, None, None]
    expected = attn.proj((logits.softmax(-1) @ v).transpose(1, 2).reshape(2, 5, 8))
    assert torch.allclose(out, expected, atol=1e-5)
    changed = context.clone()
    changed[0, 2:] = 100.0  # padding of row 0
    assert torch.allclose(attn(x, changed, mask), out, atol=1e-6)
    changed[0, 0] += 1.0  # a real token
    assert not torch.allclose(attn(x, changed, mask)[0], out[0], atol=1e-3)
    assert torch.allclose(masked_mean(context, mask)[0], context[0, :2].mean(0))


def _randomized(module: torch.nn.Module) -> torch.nn.Module:
    """Every weight drawn anew: zero-initialised output layers would hide the context."""
    torch.manual_seed(1)
    for p in module.parameters():
        p.data.normal_(0, 0.2)
    return module.eval()


@pytest.mark.parametrize("net", [
    lambda: UNet(image_size=8, in_channels=1, base_channels=16, channel_mult=(1, 2),
                 num_res_blocks=1, attention_resolutions=(4,), groups=8, dropout=0.0,
                 context_dim=12),
    lambda: DiT(image_size=8, patch_size=2, in_channels=1, hidden_size=16, depth=2,
                num_heads=2, num_classes=0, context_dim=12),
], ids=["unet", "dit"])
def test_context_conditioned_backbones_follow_the_prompt_not_its_padding(net):
    model = _randomized(TextConditioned(net(), TextEncoder(vocab_size=7, max_length=3, dim=12,
                                                           depth=1, num_heads=2)))
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([10.0, 500.0, 900.0])
    tokens = torch.tensor([[1, 2, 0], [3, 0, 0], [0, 0, 0]])  # the last: the empty prompt
    out = model(x, t, tokens)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert torch.allclose(model(x, t, None)[2], out[2], atol=1e-5)  # None: the empty prompt
    other = model(x, t, torch.tensor([[1, 4, 0], [5, 0, 0], [6, 0, 0]]))
    assert all((other[i] - out[i]).abs().max() > 1e-3 for i in range(3))
    # a sample's output does not depend on the other prompts of its batch
    assert torch.allclose(model(x[:1], t[:1], tokens[:1]), out[:1], atol=1e-5)
    context, mask = model.encoder(tokens)
    assert mask.tolist() == [[True, True, True, False], [True, True, False, False],
                             [True, False, False, False]]
    # padding positions' vectors never reach the image
    noisy = torch.where(mask[..., None], context, torch.randn_like(context) * 50)
    assert torch.allclose(model.net(x, t, None, context=noisy, context_mask=mask),
                          model.net(x, t, None, context=context, context_mask=mask), atol=1e-4)
    with pytest.raises(ValueError, match="give context and context_mask"):
        model.net(x, t, None)
    plain = net().__class__  # a network built without context refuses one
    kwargs = ({"image_size": 8, "in_channels": 1, "base_channels": 16, "channel_mult": (1,),
               "attention_resolutions": (), "groups": 8} if plain is UNet else
              {"image_size": 8, "in_channels": 1, "hidden_size": 16, "depth": 1,
               "num_heads": 2, "num_classes": 0})
    with pytest.raises(ValueError, match="takes no context"):
        plain(**kwargs)(x, t, None, context=context, context_mask=mask)


def test_unet_with_context_checkpointing_computes_the_same():
    kwargs = {"image_size": 8, "in_channels": 1, "base_channels": 16, "channel_mult": (1, 2),
              "num_res_blocks": 1, "attention_resolutions": (4,), "groups": 8, "dropout": 0.0,
              "context_dim": 4}
    a = _randomized(UNet(**kwargs))
    b = UNet(**kwargs, checkpointing=True)
    b.load_state_dict(a.state_dict())
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3.0, 7.0])
    context, mask = torch.randn(2, 3, 4), torch.tensor([[True, True, False], [True] * 3])
    a.train(), b.train()
    for m in (a, b):
        m(x, t, None, context=context, context_mask=mask).square().sum().backward()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(pa.grad, pb.grad, atol=1e-5), name


TINY = ["stage=text_to_image", "logger=csv", "backbone.base_channels=16",
        "backbone.num_res_blocks=1", "trainer.enable_progress_bar=false",
        "trainer.val_check_interval=100", "module.warmup_steps=0",
        "callbacks.prompt_grid.every_n_steps=200", "text.eval_samples_per_prompt=4",
        "text.encoder.dim=32", "callbacks.prompt_guidance_sweep.scales=[1,3]",
        "callbacks.prompt_guidance_sweep.samples_per_prompt=1"]


def test_guidance_mixes_the_prompt_with_the_empty_prompt(tmp_path):
    """D_g = D_empty + w (D_prompt - D_empty), the empty prompt all padding; training drops a
    caption to it at rate guidance.label_dropout; validation captions are each image's own."""
    from diffusion_lab.precond import VPDenoiser
    from diffusion_lab.tasks.build import build_module

    module = build_module(compose_config("train", [*TINY, "guidance.label_dropout=0.3"],
                                         tmp_path / "run"))
    _randomized(module.ema.model)
    module.clip_denoised = False
    tokens = module.encode_prompts(["seven slanted left", "an 8"])
    x, sigma = torch.randn(2, 1, 8, 8), torch.tensor([2.0, 0.5], dtype=torch.float64)
    plain = VPDenoiser(module.ema.model, module.schedule, module.prediction)
    d_c, d_u = plain(x, sigma, tokens), plain(x, sigma, torch.zeros_like(tokens))
    guided = module.denoiser(guidance_scale=3.0)(x, sigma, tokens)
    assert torch.allclose(guided, d_u + 3.0 * (d_c - d_u), atol=1e-4)
    assert not torch.allclose(d_c, d_u, atol=1e-3)
    # a negative prompt takes the empty prompt's place: D_neg + w (D_prompt - D_neg)
    d_n = plain(x, sigma, module.encode_prompts(["slanted right", "slanted right"]))
    against = module.denoiser(guidance_scale=3.0, negative_prompt="slanted right")(x, sigma, tokens)
    assert torch.allclose(against, d_n + 3.0 * (d_c - d_n), atol=1e-4)
    assert not torch.allclose(d_n, d_u, atol=1e-3)
    images = torch.cat([_stroke(k, size=8, rows=range(1, 7), r0=4.0, c0=4.0).float()
                        for k in (-0.3, 0.3)]).repeat(2000, 1, 1, 1)
    labels = torch.tensor([7, 8]).repeat(2000)
    torch.manual_seed(0)
    train_tokens = module.condition(images, labels, training=True)
    assert abs(float((train_tokens == 0).all(1).double().mean()) - 0.3) < 0.03
    val = module.condition(images[:2], labels[:2], training=False)
    assert [module.tokenizer.decode(r) for r in val.tolist()] == ["seven slanted left",
                                                                   "eight slanted right"]
    with pytest.raises(ValueError, match="generate"):
        module.sample(2)
    with pytest.raises(ValueError, match="unknown word"):
        module.encode_prompts(["a cat"])


def test_adherence_counts_slants_as_asked_and_chance_from_the_data():
    grammar = CaptionGrammar()
    prompts = ["seven slanted left", "3 slanted right", "eight"]
    samples = torch.cat([_stroke(-0.3, 8, range(1, 7), 4.0, 4.0)] * 2   # as asked
                        + [_stroke(-0.3, 8, range(1, 7), 4.0, 4.0)] * 2  # left for "right"
                        + [_stroke(0.0, 8, range(1, 7), 4.0, 4.0)] * 2).float()
    data = torch.cat([_stroke(k, 8, range(1, 7), 4.0, 4.0) for k in (-0.3, 0.0, 0.3, 0.3)]).float()
    labels = torch.tensor([7, 7, 3, 3])
    report = prompt_adherence(grammar, prompts, samples, 2, data_images=data, data_labels=labels)
    assert report["t2i_slant_adherence"] == 0.5  # "eight" names no slant: not counted
    assert report["t2i_slant_confusion"] == [[2, 0, 0], [0, 0, 0], [2, 0, 0]]
    # P(left | 7) = 1/2, P(right | 3) = 1
    assert report["t2i_slant_chance"] == pytest.approx(0.75)
    assert slant_chance(grammar, [(None, 2)], data, labels) == pytest.approx(0.5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """8x8 digits, 400 steps (~40 s on 2 cores)."""
    from diffusion_lab.tasks.train import train

    root = tmp_path_factory.mktemp("text_to_image")
    os.environ.setdefault("DIFFUSION_LAB_CACHE", str(root / "cache"))
    run_dir = root / "out" / "run"
    metrics = train(compose_config("train", [*TINY, "trainer.max_steps=400"], run_dir))
    return metrics, run_dir


@pytest.mark.slow
def test_the_stage_trains_a_model_that_follows_its_prompts(trained):
    metrics, run_dir = trained
    report = json.loads((run_dir / "text_to_image.json").read_text())
    assert report["t2i_prompts"] == 30 and report["t2i_samples"] == 120
    for key in ("t2i_slant_adherence", "t2i_class_accuracy", "fid_classifier"):
        assert key in metrics and report[key] == metrics[key]
    # 400 steps: the class named in the prompt is drawn far above chance (0.1)
    assert report["t2i_class_accuracy"] > 0.5
    # and, guided, the slant asked: a model that ignored it would meet 1/3 of the 120 prompts'
    # slants (sd 0.043); measured 0.57-0.62 at seeds 0 and 1
    from diffusion_lab.discretization import LogSNRSpacing
    from diffusion_lab.sampler_spec import SamplerSpec
    from diffusion_lab.samplers.ode import dpmpp_2m
    from diffusion_lab.tasks.build import module_from_checkpoint
    from diffusion_lab.tasks.io import load_checkpoint_file
    from diffusion_lab.text_to_image.evaluation import default_prompts, generate_for_prompts

    ckpt = run_dir / "checkpoints" / "last.ckpt"
    module = module_from_checkpoint(load_checkpoint_file(ckpt), path=ckpt, text_to_image=True)
    prompts = default_prompts(module.grammar)
    x = generate_for_prompts(module, prompts, samples_per_prompt=4, seed=0, guidance_scale=3.0,
                             sampler=SamplerSpec(dpmpp_2m, LogSNRSpacing(), 10))
    assert prompt_adherence(module.grammar, prompts, x, 4)["t2i_slant_adherence"] > 0.45
    assert (run_dir / "text_to_image.png").stat().st_size > 0
    grids = sorted(p.name for p in (run_dir / "media" / "text_to_image_grid").glob("*.png"))
    assert grids == ["step0000200.png", "step0000400.png"]
    # the end-of-training guidance sweep: one row per w, each the adherence of its samples
    table = json.loads((run_dir / "media" /
                        "prompt_guidance_sweep_table_step0000400.json").read_text())
    rows = {row[0]: dict(zip(table["columns"], row)) for row in table["rows"]}
    assert sorted(rows) == [1.0, 3.0] and rows[3.0]["nfe"] == 2 * rows[1.0]["nfe"]
    assert all(0 <= r["slant_adherence"] <= 1 and r["fid"] > 0 for r in rows.values())
    for name in ("prompt_guidance_sweep_adherence_vs_w", "prompt_guidance_sweep_fid_vs_w",
                 "prompt_guidance_sweep_samples"):
        assert list((run_dir / "media" / name).glob("*.png")), name


@pytest.mark.slow
def test_text_to_image_cli_samples_prompts_reproducibly_and_refuses_in_one_line(trained, tmp_path):
    import subprocess
    import sys

    import numpy as np
    from conftest import ROOT

    from diffusion_lab.tasks.errors import ConfigError
    from diffusion_lab.tasks.sample import sample
    from diffusion_lab.tasks.text_to_image import text_to_image

    _, run_dir = trained
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    prompts = 'prompts=["seven slanted left","an 8"]'
    common = [f"ckpt={ckpt}", "metrics=false", "samples_per_prompt=3", prompts]
    a = tmp_path / "a"  # as a user runs it
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "text_to_image.py"), *common,
                           "guidance.scale=3", f"hydra.run.dir={a}"], capture_output=True,
                          text=True, check=False, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]

    def run(name, *args):
        out = tmp_path / name
        text_to_image(compose_config("text_to_image", [*common, *args], out))
        return out

    b, c = run("b", "guidance.scale=3"), run("c", "guidance.scale=1")
    with np.load(a / "samples.npz") as fa, np.load(b / "samples.npz") as fb, \
            np.load(c / "samples.npz") as fc:
        assert fa["x"].shape == (6, 1, 8, 8) and np.array_equal(fa["x"], fb["x"])
        assert list(fa["prompts"]) == ["seven slanted left"] * 3 + ["an 8"] * 3
        assert not np.allclose(fc["x"], fa["x"], atol=1e-3)  # guidance changes the samples
    report = json.loads((a / "text_to_image.json").read_text())
    assert report["t2i_guidance_scale"] == 3 and report["prompts"][1] == "an 8"
    assert "t2i_class_accuracy" not in report and "t2i_slant_adherence" in report
    assert report["t2i_negative_prompt"] is None and len(report["t2i_slant_shares"]) == 3
    n = run("n", "guidance.scale=3", 'negative_prompt="slanted left"')
    with np.load(n / "samples.npz") as fn, np.load(b / "samples.npz") as fb:
        assert not np.allclose(fn["x"], fb["x"], atol=1e-3)
    assert json.loads((n / "text_to_image.json").read_text())["t2i_negative_prompt"] == \
        "slanted left"
    line = refusal_line("text_to_image.py", f"ckpt={ckpt}", 'prompts=["a purple cat"]',
                        f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path)
    assert "unknown word 'purple'" in line and "the model knows: zero one" in line, line
    for args, says in [
        (['prompts=["a seven slanted left upright"]'], "at most 4"),
        (["prompts=7"], "a prompt or a list of prompts"),
        (["samples_per_prompt=0"], "samples_per_prompt"),
        (["guidance.scale=-1"], "finite number >= 0"),
        (["guidance.rescale=0.7"], "guidance.rescale"),
        (["guidance=autoguidance"], "guidance.guide_ckpt"),
        (["negative_prompt=\"a cat\"", "guidance.scale=3"], "negative_prompt: .*unknown word 'cat'"),
        (["negative_prompt=upright", "guidance.scale=1"], "needs guidance.scale != 1"),
        (["negative_prompt=[upright]", "guidance.scale=3"], "one prompt"),
    ]:
        with pytest.raises(ConfigError, match=says):
            text_to_image(compose_config("text_to_image", [f"ckpt={ckpt}", *args],
                                         tmp_path / "r"))
    with pytest.raises(ConfigError, match="text-to-image model.*text_to_image.py"):
        sample(compose_config("sample", [f"ckpt={ckpt}"], tmp_path / "s"))
    from diffusion_lab.distill.build import adopt_teacher_config

    with pytest.raises(ConfigError, match="is a text-to-image model .distilling one is not built"):
        adopt_teacher_config(compose_config("train", ["stage=distill",
                                                      f"distill.teacher_ckpt={ckpt}"],
                                            tmp_path / "d"))
    # and the other way round: a class-conditional checkpoint has no prompts to follow
    from diffusion_lab.tasks.build import build_module

    plain = build_module(compose_config("train", [o for o in TINY if "text" not in o
                                                  and "prompt_" not in o], tmp_path / "p"))
    other = tmp_path / "class_conditional.ckpt"
    torch.save({"state_dict": plain.state_dict(), "diffusion_lab_config": plain.run_config,
                "diffusion_lab_model": plain.model_facts()}, other)
    with pytest.raises(ConfigError, match="is not a text-to-image model"):
        text_to_image(compose_config("text_to_image", [f"ckpt={other}"], tmp_path / "o"))


@pytest.mark.slow
def test_resuming_with_another_vocabulary_or_slant_rule_is_refused(trained, tmp_path):
    from diffusion_lab.tasks.build import build_module, check_checkpoint_fits
    from diffusion_lab.tasks.io import CheckpointError, load_checkpoint_file

    _, run_dir = trained
    ckpt = load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")
    for override, says in [("text.slant_threshold=0.3", "slant threshold 0.15"),
                           ("text.holdout=[\"seven slanted left\"]", "holding out nothing"),
                           ("text.class_words=[o,i,ii,iii,iv,v,vi,vii,viii,ix]",
                            "prompts in the words zero one")]:
        other = build_module(compose_config("train", [*TINY, override], tmp_path / "r"))
        with pytest.raises(CheckpointError, match=says):
            check_checkpoint_fits(other, ckpt, "last.ckpt", "this run's config")


@pytest.mark.parametrize("override,says", [
    ("text.class_words=[zero,one]", "2 words for data=digits's 10 classes"),
    ("text.slant_threshold=0", "text.slant_threshold must be a number > 0"),
    ("text.encoder.dim=0", "text.encoder.dim must be an integer >= 1"),
    ("text.eval_prompts=[\"a cat\"]", "unknown word 'cat'"),
    ("data=toy2d", "needs images"),
    ("text.class_words=[zero,one,two,three,four,five,six,seven,eight,left]", "distinct"),
    ("callbacks.prompt_grid.prompts=[\"a seven\",\"a dog\"]", "unknown word 'dog'"),
    ("text.holdout=[seven]", "names a class and a slant"),
    ("text.holdout=seven", "text.holdout must be a list of prompts"),
    ("autoencoder=kl_f4", "runs in pixel space"),
    ("backbone=mlp", "needs an image backbone"),
])
def test_bad_stage_config_is_refused_in_one_line(override, says, tmp_path):
    from diffusion_lab.tasks.errors import ConfigError
    from diffusion_lab.tasks.validate import validate_train_config

    with pytest.raises(ConfigError, match=says.replace("[", r"\[")):
        validate_train_config(compose_config("train", ["stage=text_to_image", override],
                                             tmp_path / "run"))


def test_a_bad_stage_config_stops_train_py_with_exit_2(tmp_path):
    line = refusal_line("train.py", "stage=text_to_image", "text.class_words=[zero,one]",
                        f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert line.startswith("error: ") and "2 words for data=digits's 10 classes" in line, line
