"""reelvec/whitening.py and the evaluation tool that replays copy detection on whitened frames."""

import json

import numpy as np
import pytest

from reelvec import copies
from reelvec.tools.evaluation import copy_methods
from reelvec.tools.evaluation import whitening as tool
from reelvec.whitening import Whitening

DIM = 64
STRONG = np.random.default_rng(99).normal(size=(4, DIM)) * 6  # what frames of any footage share


def _footage(rng, n, kind=None):
    """Frames: a strong part along STRONG's few directions (the kind of scene; drawn per frame
    unless given) and a weak one in every direction."""
    kind = rng.normal(size=(n, len(STRONG))) if kind is None else np.broadcast_to(kind, (n, len(STRONG)))
    return kind @ STRONG + rng.normal(size=(n, DIM)) + 10 * np.eye(DIM)[0]


def test_whitened_components_have_unit_variance_and_the_rows_unit_norm():
    rng = np.random.default_rng(0)
    rows = _footage(rng, 4000)
    whitening = Whitening.fit(rows, 16)
    projected = (rows - whitening.mean) @ whitening.matrix
    assert np.allclose(np.cov(projected, rowvar=False), np.eye(16), atol=0.05)
    out = whitening.apply(rows[:5])
    assert out.shape == (5, 16) and np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="at least that many rows"):
        Whitening.fit(rows[:10], 16)


def test_whitening_lets_the_weak_directions_tell_two_frames_of_one_kind_apart():
    """Raw cosine: two unrelated frames of one kind meet nearly as high as a frame and its copy.
    Whitened: the copy stays close, the look-alike falls far below it."""
    rng = np.random.default_rng(1)
    whitening = Whitening.fit(_footage(rng, 4000), 32)
    frame, other = _footage(rng, 2, kind=rng.normal(size=len(STRONG)))  # only the weak part differs
    copy = frame + 0.3 * rng.normal(size=frame.shape)
    cos = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))  # noqa: E731
    raw_gap = cos(frame, copy) - cos(frame, other)
    white = whitening.apply(np.stack([frame, copy, other]))
    white_gap = float(white[0] @ white[1] - white[0] @ white[2])
    assert white_gap > raw_gap + 0.2


def test_a_track_keeps_its_times_and_its_views_per_frame():
    rng = np.random.default_rng(2)
    whitening = Whitening.fit(_footage(rng, 500), 8)
    track = copies.Track.of(np.arange(3) + 0.5, _footage(rng, 3), _footage(rng, 15).reshape(3, 5, 64))
    whitened = whitening.track(track)
    assert np.array_equal(whitened.times, track.times)
    assert whitened.vectors.shape == (3, 8) and whitened.views.shape == (3, 5, 8)
    assert np.allclose(whitened.views[1, 2], whitening.apply(track.views[1, 2]))


def _evaluation(folder, rng):
    """A saved evaluation: a full copy and an unrelated video against two originals."""
    first, second = _footage(rng, 12), _footage(rng, 12)
    originals = [copies.Track.of(np.arange(12) + 0.5, r) for r in (first, second)]
    queries = [copies.Track.of(np.arange(12) + 0.5, first + 0.05 * rng.normal(size=first.shape)),
               copies.Track.of(np.arange(10) + 0.5, _footage(rng, 10))]
    about = [copy_methods.Query("crop", 0), copy_methods.Query(copy_methods.UNRELATED, -1)]
    folder.mkdir()
    section = copy_methods.frames_section(queries, originals, about, ["a", "b"])
    (folder / "report.json").write_text(json.dumps({"copy_methods": section}))
    copy_methods.save_tracks(folder / "frames.npz", queries, originals)
    return section


def test_the_tool_replays_other_evaluations_as_stored_and_whitened(tmp_path, capsys):
    rng = np.random.default_rng(3)
    for name in ("fit", "other"):
        _evaluation(tmp_path / name, rng)
    _evaluation(tmp_path / "big", np.random.default_rng(4))
    tool.main(["--fit", str(tmp_path / "big"), "--dims", "8", str(tmp_path / "other"), str(tmp_path / "big")])
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("| other")]
    assert [row.split(" | ")[1] for row in rows] == ["as stored (64-d)", "whitened to 8-d"]
    saved = json.loads((tmp_path / "other" / "report.json").read_text())["copy_methods"]
    assert rows[0] == "| " + " | ".join(["other", "as stored (64-d)", *tool.summary(saved[copy_methods.FRAMES])]) + " |"
    assert "big: not replayed, the whitening was fitted on it" in printed
    assert not any(line.startswith("| big") for line in printed.splitlines())
