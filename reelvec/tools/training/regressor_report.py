"""`reelvec train regressor --out DIR`: DIR/report.md, the summary the command prints and four plots
of the served kind's validation (docs/regressor.md, Plots), each video predicted by a model that
never saw its author: predicted against actual likes, the interval's coverage by predicted likes,
the error by the author's followers, and the ablations. `reelvec evaluate` draws the same plots of
the likes model it chooses (`draw`)."""

from pathlib import Path

import numpy as np
from google.protobuf import json_format

from reelvec.likes import intervals
from reelvec.tools import plots
from reelvec.v1 import regressor_pb2

COVERAGE_TARGET = (0.72, 0.88)  # what the interval is held to (tests/test_real_posts.py)
PLOTS = ("predicted-vs-actual.png", "interval-coverage.png", "error-by-followers.png", "ablations.png")


def _groups(values: np.ndarray) -> list[np.ndarray]:
    """The videos' indices in equal groups by `values`, smallest first: tenths, fewer for small corpora
    so that each group has about 20 videos (at least 3 groups)."""
    count = min(10, max(3, len(values) // 20), len(values))
    return np.array_split(np.argsort(values, kind="stable"), count)


def _count(value: float) -> str:
    """12, 3.4k, 5.6M: a likes or followers count as a tick label (below 0 likes is 0, as Predict says)."""
    value = max(value, 0.0)
    for bound, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= bound:
            return f"{value / bound:.1f}{suffix}"
    return f"{value:.0f}"


def _ablation_label(features: str) -> str:
    """The ladder's steps: "author", then what each adds ("author+text" -> "+ text")."""
    return features if "+" not in features else "+ " + features.rsplit("+", 1)[1]


def write(report: regressor_pb2.TrainReport, summary: str, folder: Path) -> Path:
    """Writes the plots and report.md into `folder`; returns report.md's path."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["# reelvec likes model", "", "```text", summary, "```"]
    validation = json_format.MessageToDict(report, preserving_proto_field_name=True,
                                           always_print_fields_with_no_presence=True)
    sections = draw(validation, folder)
    if not sections:
        lines += ["", "No plots: the regressor service sent no per-video predictions (a version without them)."]
    lines += plots.embed(sections)
    path = folder / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def draw(validation: dict, folder: Path, prefix: str = "") -> list[tuple[str, str, str]]:
    """Draws the plots of a likes model's validation into `folder`, each file name after `prefix`:
    (heading, file name, caption) of each, none without per-video predictions. `validation` is what
    likes.model.train reports (out_of_fold, ablations), or a TrainReport as a dict. A plot of ours
    that this validation has nothing for is removed, so that the folder shows only this run's."""
    posts = validation.get("out_of_fold") or []
    sections = _draw(posts, validation.get("ablations") or [], folder, prefix) if posts else []
    drawn = {image for _, image, _ in sections}
    for name in PLOTS:
        if prefix + name not in drawn:
            (folder / (prefix + name)).unlink(missing_ok=True)
    return sections


def _draw(posts: list[dict], ablations: list[dict], folder: Path, prefix: str) -> list[tuple[str, str, str]]:
    actual = np.array([p["actual"] for p in posts])
    predicted = np.array([p["predicted"] for p in posts])
    inside = np.array([p["inside"] for p in posts])
    followers = np.array([p["followers"] for p in posts])
    sections = []

    plots.scatter(folder / f"{prefix}predicted-vs-actual.png", actual.tolist(), predicted.tolist(),
                  "Each video predicted by a model that never saw its author",
                  "actual log1p(likes)", "predicted log1p(likes)")
    sections.append(("Predicted against actual", f"{prefix}predicted-vs-actual.png",
                     "One point per video, out of fold; on the red diagonal the prediction is exact. "
                     "A distance of 1 is a factor of e (2.7x) in likes."))

    by_prediction = _groups(predicted)
    plots.bars(folder / f"{prefix}interval-coverage.png",
               [_count(np.expm1(np.median(predicted[g]))) for g in by_prediction],
               {"coverage": [float(inside[g].mean()) for g in by_prediction]},
               f"Share of videos inside their {intervals.LEVEL:.0%} interval",
               "predicted likes (the median of each group of videos, by predicted likes)", "coverage",
               line=intervals.LEVEL, band=COVERAGE_TARGET)
    sections.append((f"The {intervals.LEVEL:.0%} interval's coverage by predicted likes", f"{prefix}interval-coverage.png",
                     f"Each bar: the videos in one group by predicted likes, checked against the interval "
                     f"calibrated on the other author folds. Red line: {intervals.LEVEL:.0%}; shaded: the "
                     f"{COVERAGE_TARGET[0]:.0%}-{COVERAGE_TARGET[1]:.0%} target."))

    # without author statistics every group would be "0 followers": nothing to compare
    if len(np.unique(followers)) > 1:
        by_followers = _groups(followers)
        plots.bars(folder / f"{prefix}error-by-followers.png",
                   [_count(np.median(followers[g])) for g in by_followers],
                   {"MAE": [float(np.abs(actual[g] - predicted[g]).mean()) for g in by_followers]},
                   "Mean absolute error by the author's followers",
                   "followers (the median of each group of videos, by the author's followers)", "MAE in log1p(likes)")
        sections.append(("Error by author size", f"{prefix}error-by-followers.png",
                         "Each bar: the mean |actual - predicted| in log1p(likes) of one group of videos by their "
                         "author's followers."))

    if ablations:
        plots.bars(folder / f"{prefix}ablations.png", [_ablation_label(a["features"]) for a in ablations],
                   {"R^2": [a["r2"] for a in ablations], "Spearman": [a["spearman"] for a in ablations]},
                   f"{ablations[0]['model']} on growing feature sets (author folds)",
                   "features: author statistics and track record, then each modality added", "score")
        sections.append(("Ablations", f"{prefix}ablations.png",
                         "The chosen kind fitted on the author's statistics alone, then with each modality "
                         "added; the last bar is the model itself, on every column."))
    return sections
