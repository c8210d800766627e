"""The blind side-by-side page and its tally: a rater who reads only the page is scored against
the key; the statistics against closed forms; unpaired sets and foreign votes refused."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffusion_lab.reports.human_eval import (
    HumanEvalError,
    sign_test_p,
    tally,
    wilson_interval,
    write_page,
)

ROOT = Path(__file__).resolve().parents[1]


def test_sign_test_and_wilson_interval_closed_forms():
    assert sign_test_p(9, 1) == pytest.approx(2 * (1 + 10) / 1024)
    assert sign_test_p(10, 0) == pytest.approx(2 / 1024)
    assert sign_test_p(1, 9) == sign_test_p(9, 1)
    assert sign_test_p(5, 5) == 1.0 and sign_test_p(0, 0) == 1.0
    low, high = wilson_interval(8, 10)  # the textbook example: 0.490 to 0.943
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def samples(path: Path, x: np.ndarray, labels: np.ndarray) -> Path:
    np.savez_compressed(path, x=x.astype(np.float32), labels=labels)
    return path


def page_images(html: str) -> list[np.ndarray]:
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(u)))) for u in uris]


def test_a_rater_who_sees_only_the_page_is_scored_against_the_key(tmp_path):
    rng = np.random.default_rng(0)
    n = 12
    labels = np.arange(n) % 10
    clean = samples(tmp_path / "a.npz", -np.ones((n, 1, 8, 8)), labels)  # plain black images
    noisy = samples(tmp_path / "b.npz", rng.uniform(-1, 1, (n, 1, 8, 8)), labels)
    key = write_page(clean, noisy, tmp_path / "page", names=("plainset", "noiseset"), seed=3)
    html = (tmp_path / "page" / "index.html").read_text()
    assert "plainset" not in html and "noiseset" not in html and "a_is_left" not in html  # blind
    assert 0 < sum(key["a_is_left"]) < n  # both sides used
    images = page_images(html)
    assert len(images) == 2 * n and images[0].shape[0] >= 128  # upscaled for the eye
    # the rater: prefers the plain image; on pair 0 says "same"
    votes = [{"pair": i, "choice": "left" if images[2 * i].std() < images[2 * i + 1].std()
              else "right"} for i in range(n)]
    votes[0]["choice"] = "same"
    (tmp_path / "votes.json").write_text(json.dumps({"page_id": key["page_id"], "votes": votes}))
    # a second rater who always clicks left
    left = [{"pair": i, "choice": "left"} for i in range(n)]
    (tmp_path / "left.json").write_text(json.dumps({"page_id": key["page_id"], "votes": left}))
    result = tally(tmp_path / "page" / "key.json", [tmp_path / "votes.json"])
    assert (result["plainset_wins"], result["noiseset_wins"], result["same"]) == (n - 1, 0, 1)
    assert result["plainset_share"] == 1.0 and result["sign_test_p"] == pytest.approx(2 / 2 ** (n - 1))
    both = tally(tmp_path / "page" / "key.json", [tmp_path / "votes.json", tmp_path / "left.json"])
    lefts = sum(key["a_is_left"])
    assert both["plainset_wins"] == n - 1 + lefts and both["noiseset_wins"] == n - lefts
    assert [r["same"] for r in both["raters"]] == [1, 0]


def test_unpaired_sets_foreign_votes_and_bad_files_are_refused(tmp_path):
    x = np.zeros((4, 1, 8, 8))
    a = samples(tmp_path / "a.npz", x, np.array([0, 1, 2, 3]))
    b = samples(tmp_path / "b.npz", x, np.array([0, 1, 3, 3]))
    with pytest.raises(HumanEvalError, match="not paired: image 2 is class 2 in A and 3 in B"):
        write_page(a, b, tmp_path / "page")
    with pytest.raises(HumanEvalError, match=r"pairs must be in \[1, 4\]"):
        write_page(a, a, tmp_path / "page", pairs=5)
    key = write_page(a, a, tmp_path / "page")
    (tmp_path / "other.json").write_text(json.dumps({"page_id": "elsewhere", "votes": []}))
    with pytest.raises(HumanEvalError, match=f"the key is of page {key['page_id']}"):
        tally(tmp_path / "page" / "key.json", [tmp_path / "other.json"])
    (tmp_path / "junk.npz").write_bytes(b"not an archive")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "human_eval.py"), "make",
                           str(tmp_path / "junk.npz"), str(a), "--out", str(tmp_path / "p2")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("error: ") and "not a samples.npz" in proc.stderr
