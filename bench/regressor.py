"""Training the likes model at 5,000 posts (issue 19: "finishes in minutes on 2 cores; report the
time and peak memory"): `reelvec train regressor`'s default choice (reelvec/likes/model.py `train`:
every kind of CHOICE under author folds and the time hold-out, the ablations, the interval, the
refit) against what a user would write with scikit-learn: RidgeCV under GroupKFold by author, then
one fit on every post. Each in a process of its own, so that each peak RSS is its own.

The rows are synthetic at the served width (the fused vector and the author columns), drawn from a
seeded generator: timing is mechanics, and no accuracy is read from them (docs/regressor.md has
the real posts' numbers). `--quick`: 1,000 posts."""

import concurrent.futures
import multiprocessing

import numpy as np

from bench import common

POSTS, QUICK_POSTS = 5000, 1000
AUTHORS_PER_POST = 0.6  # the real posts: 1,073 authors for 1,792 posts, @justinbieber 131 of them
FOLDS = 5
ALPHAS = (0.1, 1.0, 10.0, 100.0)  # the baseline's ridge penalties, chosen by its own inner CV


def posts(n: int, seed: int = 0):
    """(rows, likes, authors, created_at): authors of Zipf-like sizes; likes driven by the author's
    followers, one embedding direction and noise."""
    from reelvec.likes import features

    rng = np.random.default_rng(seed)
    weights = 1 / np.arange(1, int(AUTHORS_PER_POST * n) + 1)  # Zipf: a few prolific authors, a long tail
    authors = rng.choice(len(weights), n, p=weights / weights.sum())
    rows = 0.05 * rng.standard_normal((n, len(features.NAMES)))
    followers = rng.uniform(2, 16, authors.max() + 1)
    rows[:, features.AUTHOR] = followers[authors, None] * rng.uniform(0.5, 1.0, (1, 5))
    log_likes = 0.6 * followers[authors] + 0.3 * rows[:, 0] / 0.05 + rng.normal(0, 1.2, n)
    created = 1_600_000_000 + np.sort(rng.integers(0, 3 * 365 * 86400, n))
    return rows, np.expm1(np.maximum(log_likes, 0)), authors.astype(str), created


def _reelvec(n: int, kinds: tuple[str, ...] | None = None) -> tuple[str, float]:
    from reelvec.likes import model

    rows, likes, authors, created = posts(n)
    _, report = model.train(rows, likes, groups=authors, created_at=created, kinds=kinds)
    return report["model"], report["interval_coverage"]


def _sklearn(n: int, kinds=None) -> tuple[str, float]:
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import GroupKFold, cross_val_predict

    rows, likes, authors, _ = posts(n)
    target = np.log1p(likes)
    predicted = cross_val_predict(RidgeCV(alphas=ALPHAS), rows, target, groups=authors, cv=GroupKFold(FOLDS))
    RidgeCV(alphas=ALPHAS).fit(rows, target)
    return "RidgeCV", float(1 - ((target - predicted) ** 2).sum() / ((target - target.mean()) ** 2).sum())


def _timed(engine: str, n: int, kinds) -> tuple[float, float, float, str, float]:
    """In a fresh process: wall s, CPU s, peak RSS MiB, and what the engine returned."""
    with common.Timer() as timer:
        name, value = {"reelvec": _reelvec, "sklearn": _sklearn}[engine](n, kinds)
    return timer.wall, timer.cpu, common.peak_rss_mb(), name, value


def measure(engine: str, n: int, kinds: tuple[str, ...] | None = None):
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        return pool.submit(_timed, engine, n, kinds).result()


def run(args) -> common.Section:
    """`args.regressor_posts`, `args.regressor_kinds` ("ridge,mean"): a smaller run (the suite's test)."""
    n = getattr(args, "regressor_posts", None) or (QUICK_POSTS if args.quick else POSTS)
    kinds = tuple(filter(None, getattr(args, "regressor_kinds", "").split(","))) or None
    section = common.Section(
        f"Training the likes model: {n:,} posts, one process each",
        ["engine", "posts", "wall s", "CPU s", "peak RSS MiB", "served"])
    found = {}
    for engine, label in (("reelvec", "reelvec train regressor (default choice)"),
                          ("sklearn", "scikit-learn RidgeCV, GroupKFold (baseline)")):
        wall, cpu, rss, name, value = found[engine] = measure(engine, n, kinds)
        section.rows.append([label, f"{n:,}", wall, cpu, rss, name])
    section.metrics |= {
        "regressor_train_s": found["reelvec"][0], "regressor_train_peak_mb": found["reelvec"][2],
        "regressor_train_s_sklearn": found["sklearn"][0], "regressor_train_peak_mb_sklearn": found["sklearn"][2],
    }
    section.notes += [
        "reelvec: every kind of reelvec.likes.model.CHOICE under author folds and the time hold-out, the "
        f"ablations of the chosen kind, the interval (covered {found['reelvec'][4]:.2f} under author folds), the refit; "
        f"scikit-learn: {len(ALPHAS)} alphas x {FOLDS} folds and one refit (R^2 out of fold {found['sklearn'][4]:.2f})",
        "synthetic rows at the served width (fused vector + author columns): mechanics only, no accuracy",
    ]
    return section
