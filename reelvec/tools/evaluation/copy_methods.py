"""Copy detection two ways on every (query, original) pair, side by side: the visual mean vector
against the search service's near-duplicate threshold (Predict's decision before frame descriptors,
and still for a video without them), and frame descriptors with the temporal alignment and its
decision (reelvec.copies.find).

Queries: the full edited copies, the partial copies (an excerpt between stretches of footage
outside the corpus) and videos that contain no copy (the user's `--unrelated`, else generated). Every original is a candidate of every query:
brute force costs seconds at evaluation sizes and measures the alignment and the decision without
the frame index's candidate step (docs/copies.md, 2), which the service adds in front of them.
"""

import dataclasses
from pathlib import Path

import numpy as np

from reelvec import copies
from reelvec.tools import plots
from reelvec.tools.evaluation import metrics, transforms
from reelvec.v1 import gateway_pb2

# The search service's near_duplicate_threshold (services/search/settings.py), copied because a
# tool never imports a service: the visual cosine at which a mean vector calls a video a copy.
MEAN_THRESHOLD = 0.95
MEAN, FRAMES = "mean vector only", "frame descriptors + alignment"
PARTIAL, UNRELATED = "partial", "unrelated"
GROUPS = ("full", PARTIAL, UNRELATED)  # queries: full edited copies, partial copies, no copy
# The operating point is the highest recall at this precision, not the best F1: a false copy accuses
# an uploader (it names a source and caps originality) where a missed one leaves a copy unflagged,
# and on a platform unrelated pairs outnumber copies by far more than in this evaluation, so the
# best F1 here would name many false copies there.
MIN_PRECISION = 0.99
CURVE_AT = (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)  # frame-score thresholds the report tabulates
CURVE_PLOT = "copies-frame-precision-recall.png"


@dataclasses.dataclass(frozen=True)
class Query:
    kind: str  # the transform, PARTIAL or UNRELATED
    original: int  # index of the original it copies; -1: none
    box: metrics.Box | None = None  # a partial copy: where the excerpt lies in it and in its original


def track(response: gateway_pb2.EmbedResponse) -> copies.Track | None:
    """Embed's frame descriptors; None from a gateway whose encoder sends none."""
    return copies.Track.from_proto(response.frames) if response.frames.times else None


def save_tracks(path: Path, queries: list[copies.Track | None], originals: list[copies.Track | None]) -> None:
    """The frame descriptors of every query and original, in the order of report.json's `kinds` and
    `truth`: what any alignment or decision rule needs to be replayed without embedding again."""
    arrays = {}
    for name, tracks in (("queries", queries), ("originals", originals)):
        kept = [t for t in tracks if t is not None]
        arrays[f"{name}_lengths"] = np.array([-1 if t is None else len(t) for t in tracks], np.int64)
        arrays[f"{name}_times"] = np.concatenate([t.times for t in kept]) if kept else np.zeros(0)
        arrays[f"{name}_vectors"] = (np.concatenate([t.vectors for t in kept]) if kept
                                     else np.zeros((0, 0), np.float32))
        if kept and all(t.views is not None for t in kept):  # the queries' crops (docs/copies.md, "Views")
            arrays[f"{name}_views"] = np.concatenate([t.views for t in kept])
    np.savez_compressed(path, **arrays)


def load_tracks(path: Path) -> tuple[list[copies.Track | None], list[copies.Track | None]]:
    """save_tracks' (queries, originals)."""
    with np.load(path) as saved:
        def split(name):
            # each read of an npz member decompresses it again: once per name, not once per track
            times, vectors = saved[f"{name}_times"], saved[f"{name}_vectors"]
            views = saved[f"{name}_views"] if f"{name}_views" in saved.files else None
            tracks, start = [], 0
            for length in saved[f"{name}_lengths"]:
                if length < 0:
                    tracks.append(None)
                    continue
                end = start + int(length)
                tracks.append(copies.Track(times[start:end], vectors[start:end],
                                           None if views is None else views[start:end]))
                start = end
            return tracks
        return split("queries"), split("originals")


def _box(segment: copies.Segment) -> metrics.Box:
    return segment.query_start, segment.query_end, segment.ref_start, segment.ref_end


def frame_pairs(queries: list[copies.Track | None], originals: list[copies.Track | None]):
    """Every original a candidate of every query, weighed once (copies.weigh): each pair's score as
    the service decides (the best segment's where the background rule holds, copies.decide at
    threshold 0, else 0: `score >= copies.THRESHOLD` is then copies.find's decision, and a curve
    over the threshold holds the rest of the decision as it is), each pair's segments whatever the
    decision, and what the decision weighed for every pair: [query, original, the best segment's
    score (0 without a chain), its background, its seconds on the query, the shorter video's
    seconds], enough to replay another threshold or margin without aligning again (frames.npz
    replays any other rule: replay())."""
    candidates = {str(j): ref for j, ref in enumerate(originals) if ref is not None}
    scores = np.zeros((len(queries), len(originals)))
    aligned = [[() for _ in originals] for _ in queries]
    weighed = []
    for i, query in enumerate(queries):
        for j, (segments, behind, shorter) in (copies.weigh(query, candidates) if query is not None else {}).items():
            j = int(j)
            aligned[i][j] = tuple(segments)
            weighed.append([i, j, round(segments[0].score, 4) if segments else 0.0, round(behind, 4),
                            round(segments[0].query_end - segments[0].query_start, 2) if segments else 0.0,
                            round(shorter, 2)])
            if copies.decide(segments, behind, shorter, threshold=0.0):
                scores[i, j] = segments[0].score
    return scores, aligned, weighed


def _method(scores: np.ndarray, truth: np.ndarray, threshold: float, about: list[Query], boxes) -> dict:
    """One method's measures; boxes(i, j): the segments it claims for a pair it calls a copy."""
    def at(keep) -> dict:  # the decision on the queries `keep` picks
        mask = np.array([keep(q) for q in about], bool)
        return metrics.at_threshold(scores[mask], truth[mask], threshold)

    partial = [i for i, q in enumerate(about) if q.kind == PARTIAL]
    kinds = dict.fromkeys(q.kind for q in about if q.kind != UNRELATED)
    return {
        "threshold": threshold,
        "micro_ap": metrics.micro_ap(scores, truth),
        "all": metrics.at_threshold(scores, truth, threshold),
        **{group: at(lambda q: _group(q) == group) for group in GROUPS},
        "segments": metrics.segment_match(
            [{j: boxes(i, j) for j in np.flatnonzero(scores[i] >= threshold)} for i in partial],
            [(about[i].original, about[i].box) for i in partial]),
        "operating_point": metrics.operating_point(metrics.pr_curve(scores, truth), MIN_PRECISION),
        # the margin under the decision: how close the most copy-like pair that is no copy came
        "highest_false": float(scores[~truth].max()) if (~truth).any() else None,
        "by_kind": {kind: at(lambda q: q.kind == kind)["recall"] for kind in kinds},
    }


def _group(query: Query) -> str:
    return query.kind if query.kind in (PARTIAL, UNRELATED) else "full"


def _truth(about: list[Query], originals: int) -> np.ndarray:
    truth = np.zeros((len(about), originals), bool)
    for i, query in enumerate(about):
        if query.original >= 0:
            truth[i, query.original] = True
    return truth


def frames_section(queries: list[copies.Track | None], originals: list[copies.Track | None],
                   about: list[Query], ids: list[str]) -> dict:
    """The frame descriptors' part of compare(): what the current alignment and decision make of
    the tracks, so a finished evaluation can be replayed (replay())."""
    truth = _truth(about, len(originals))
    frame_scores, segments, weighed = frame_pairs(queries, originals)
    partials = [(i, q) for i, q in enumerate(about) if q.kind == PARTIAL]
    return {
        FRAMES: _method(frame_scores, truth, copies.THRESHOLD, about,
                        lambda i, j: [_box(s) for s in segments[i][j]]),
        "frame_curve": {
            "at": [metrics.at_threshold(frame_scores, truth, t) for t in CURVE_AT],
            "points": metrics.pr_curve(frame_scores, truth),
        },
        "partial_copies": [_partial_row(q, segments[i][q.original], ids) for i, q in partials],
        "kinds": [q.kind for q in about],
        "truth": [q.original for q in about],
        "decision_inputs": weighed,
    }


def compare(originals: list[gateway_pb2.EmbedResponse], queries: list[gateway_pb2.EmbedResponse],
            visual: tuple[np.ndarray, np.ndarray], about: list[Query], ids: list[str]) -> dict:
    """Both methods on every pair. visual: the mean vectors of the originals and of the queries;
    about: what each query is; ids: the originals'."""
    cosine = metrics.similarities(visual[1], visual[0])

    def whole(i, j):  # a mean vector knows no seconds: its copy is the whole of both videos
        return [(0.0, queries[i].duration, 0.0, originals[j].duration)]

    return {
        "queries": {group: sum(_group(q) == group for q in about) for group in GROUPS},
        MEAN: _method(cosine, _truth(about, len(originals)), MEAN_THRESHOLD, about, whole),
        **frames_section([track(r) for r in queries], [track(r) for r in originals], about, ids),
    }


def replay(section: dict, frames: Path, project=None) -> dict:
    """A finished evaluation's copy_methods `section` with its frames part done again by the current
    code, from the descriptors it saved (`frames`, save_tracks'): the mean vector's column stays
    as it was measured. `project`: a Track -> Track map applied to every track first (a different
    descriptor from the same frames)."""
    queries, originals = load_tracks(frames)
    if project is not None:
        queries, originals = ([None if t is None else project(t) for t in ts] for ts in (queries, originals))
    rows = iter(section["partial_copies"])
    about, names = [], [""] * len(originals)
    for kind, original in zip(section["kinds"], section["truth"]):
        box = None
        if kind == PARTIAL:  # each partial copy's row says where its excerpt lies, and in which original
            row = next(rows)
            box, names[original] = tuple(row["query"]) + tuple(row["reference"]), row["original"]
        about.append(Query(kind, original, box))
    return section | frames_section(queries, originals, about, names)


def _partial_row(query: Query, found: tuple[copies.Segment, ...], ids: list[str]) -> dict:
    """Where the excerpt is, and the alignment's best segment with its source, whatever the decision."""
    row = {"original": ids[query.original], "query": list(query.box[:2]), "reference": list(query.box[2:])}
    if found:
        best = _box(found[0])
        row |= {"segment": list(best), "score": found[0].score,
                "iou": [metrics.iou(best[:2], query.box[:2]), metrics.iou(best[2:], query.box[2:])]}
    return row


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _point(point: dict | None) -> str:
    if point is None:
        return f"none reaches precision {MIN_PRECISION}"
    return f"{point['threshold']:.3f} (precision {point['precision']:.3f}, recall {point['recall']:.3f})"


def draw(section: dict | None, folder: Path) -> list[tuple[str, str, str]]:
    """The frame score's precision against its recall over every pair, with the decision and the
    operating point on it, drawn into `folder`: (heading, file name, caption), none without a curve
    (and an earlier run's file removed)."""
    path = folder / CURVE_PLOT
    points = ((section or {}).get("frame_curve") or {}).get("points")
    if not points:
        path.unlink(missing_ok=True)
        return []
    frames = section[FRAMES]
    marks = {f"decision: score >= {frames['threshold']}": (frames["all"]["recall"], frames["all"]["precision"])}
    if frames["operating_point"] is not None:
        point = frames["operating_point"]
        marks[f"operating point: {point['threshold']:.3f}"] = (point["recall"], point["precision"])
    plots.curve(path, [(p["recall"], p["precision"]) for p in points],
                "Frame score: precision against recall over every pair", "recall (copy pairs found)",
                "precision (of the pairs called copies)", marks, unit=True)
    return [("Frame score: the precision-recall curve", CURVE_PLOT,
             "Each point: the pairs whose frame score is at or above one threshold, from the highest "
             f"score (left) to 0 (right). The operating point is the highest recall at precision >= {MIN_PRECISION}.")]


def markdown(section: dict, drawn: list[tuple[str, str, str]] = ()) -> list[str]:
    """The section's tables; `drawn`: its plots beside the report (draw), shown after the curve's table."""
    counts = section["queries"]
    mean, frames = section[MEAN], section[FRAMES]
    lines = [
        "## Copies: mean vector only against frame descriptors + alignment", "",
        f"Queries: {counts['full']} full edited copies, {counts[PARTIAL]} partial copies (each original's "
        f"middle {transforms.EXCERPT_S:g} s, or its middle {transforms.EXCERPT_SHARE:.0%} where that is shorter, "
        "between stretches of footage outside the corpus, re-encoded smaller) and "
        f"{counts[UNRELATED]} videos that copy nothing (`--unrelated`, else generated footage: in no corpus "
        "and never queried for; generated textures look alike to the visual model, so on a corpus "
        "of generated clips a false copy can be a look-alike). Every original is a candidate of every "
        "query (brute force, fine at evaluation sizes: the service picks candidates by frame votes first). "
        "A pair's score: the visual cosine for the mean vector; for frames, the alignment's best segment "
        "where the decision's background rule holds with every original a candidate (copies.find), else 0, "
        "so that a threshold on it is the service's decision.", "",
        f"| measure | {MEAN} | {FRAMES} |", "| --- | --- | --- |",
        f"| decision | cosine >= {mean['threshold']} (near-duplicate default) | score >= {frames['threshold']} |",
        f"| micro-AP of copy pairs | {mean['micro_ap']:.3f} | {frames['micro_ap']:.3f} |",
    ]
    rows = [
        ("full copies found at the decision", lambda m: _share(m["full"]["recall"])),
        ("partial copies found at the decision", lambda m: _share(m[PARTIAL]["recall"])),
        ("partial copies located (IoU >= 0.5 on both sides)", lambda m: _share(m["segments"]["located"])),
        (f"... of excerpts of {metrics.LONG_COPY_S:g} s or more", lambda m: _share(m["segments"]["located_long"])),
        ("segment precision / recall (partial copies)",
         lambda m: f"{_share(m['segments']['precision'])} / {_share(m['segments']['recall'])}"),
        ("false copies named (pairs that are not the truth)",
         lambda m: f"{m['all']['false_copies']} ({m['all']['false_copy_rate']:.2%})"),
        (f"videos without a copy named a copy (of {counts[UNRELATED]})",
         lambda m: str(m[UNRELATED]["queries_with_false_copy"])),
        ("highest score of a pair that is no copy", lambda m: _share(m["highest_false"])),
        (f"operating point: highest recall at precision >= {MIN_PRECISION}",
         lambda m: _point(m["operating_point"])),
    ]
    lines += [f"| {label} | {cell(mean)} | {cell(frames)} |" for label, cell in rows]
    kinds = list(frames["by_kind"])
    lines += ["", "### Found at the decision, by transform", "",
              "| method | " + " | ".join(kinds) + " |", "| --- |" + " --- |" * len(kinds)]
    lines += [f"| {name} | " + " | ".join(f"{section[name]['by_kind'][k]:.2f}" for k in kinds) + " |"
              for name in (MEAN, FRAMES)]
    lines += ["", "### Frame score: precision and recall over every pair", "",
              f"The current threshold is {frames['threshold']}; the operating point (highest recall at "
              f"precision >= {MIN_PRECISION}, because a false copy accuses an uploader while a missed one "
              f"only goes unflagged): {_point(frames['operating_point'])}.", "",
              "| threshold | precision | recall | false copies |", "| --- | --- | --- | --- |"]
    lines += [f"| {p['threshold']:.2f} | {p['precision']:.3f} | {p['recall']:.3f} | {p['false_copies']} |"
              for p in section["frame_curve"]["at"]]
    lines += plots.embed(drawn, level=4)
    lines += ["", "### Partial copies: the alignment's best segment against the excerpt", "",
              "| original | excerpt in query (s) | in original (s) | best segment (s) | score "
              "| IoU query / original |",
              "| --- | --- | --- | --- | --- | --- |"]
    for row in section["partial_copies"]:
        found = (f"{_span(row['segment'][:2])} / {_span(row['segment'][2:])} | {row['score']:.3f} | "
                 f"{row['iou'][0]:.2f} / {row['iou'][1]:.2f}") if "segment" in row else "none | - | -"
        lines.append(f"| {row['original']} | {_span(row['query'])} | {_span(row['reference'])} | {found} |")
    return lines


def _span(interval) -> str:
    return f"{interval[0]:.1f}-{interval[1]:.1f}"

