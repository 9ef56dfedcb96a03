"""The likes models on real labels: 1,792 original tweets with their real like counts and their
authors' counts, from Debian's r-cran-rtweet (reelvec/tools/real_posts.py; `make media` fetches
them, and so does this module when they are missing). Each post becomes the row the regressor
trains on: the tweet's text embedded by the project's own text model as the text vector, the
author's statistics, no video or sound. docs/regressor.md (Real posts) has the measured numbers;
these tests assert what must hold on them, with margins, never exact scores."""

import asyncio
import os

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

from checkout import ROOT  # noqa: E402

from reelvec.likes import features, history, model, neighbours, validation  # noqa: E402
from reelvec.models import text  # noqa: E402
from reelvec.tools import real_posts  # noqa: E402
from services.transcriber.text_embedding import TextEmbedder  # noqa: E402

# whichever test comes first embeds the posts (about 1-2 minutes) and trains the models (several)
pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def posts() -> list[dict]:
    return real_posts.fetch(ROOT / ".media" / "posts")


@pytest.fixture(scope="module")
def text_vectors(posts) -> np.ndarray:
    """MiniLM vectors of every post's text, shortest texts batched together (less padding)."""
    embedder = TextEmbedder(text.export())
    asyncio.run(embedder.load())
    texts = [post["text"] for post in posts]
    order = np.argsort([len(t) for t in texts])
    vectors = np.zeros((len(texts), 384), np.float32)
    for start in range(0, len(texts), 32):
        batch = order[start : start + 32]
        vectors[batch] = embedder.embed([texts[i] for i in batch])
    return vectors


@pytest.fixture(scope="module")
def table(posts, text_vectors):
    rows = np.stack([features.row(real_posts.record(post, vector)) for post, vector in zip(posts, text_vectors)])
    likes = np.asarray([post["likes"] for post in posts], np.float64)
    authors = np.asarray([post["author_id"] for post in posts])
    created = np.asarray([post["created_at"] for post in posts], np.int64)
    return rows, likes, authors, created


# The default choice among the kinds that train in seconds here; mlp and transformer take about 5
# minutes each on these posts on 2 cores (docs/regressor.md has their numbers).
KINDS = ("ridge", "gbm", "author", "mean")


@pytest.fixture(scope="module")
def chosen(table):
    """What `reelvec train regressor` does with no --model, on the real posts."""
    rows, likes, authors, created = table
    return model.train(rows, likes, groups=authors, created_at=created, kinds=KINDS)


def test_the_posts_are_real_original_tweets_with_their_counts(posts):
    assert len(posts) > 1500 and len({p["id"] for p in posts}) == len(posts)
    assert len({p["author_id"] for p in posts}) > 900
    assert all(p["likes"] >= 0 and p["author_followers"] >= 0 and p["text"] for p in posts)
    assert sum(p["likes"] > 0 for p in posts) > len(posts) / 2
    # 2006 (Twitter's first year) to 2023 (the package's release)
    assert all(1_140_000_000 < p["created_at"] < 1_700_000_000 for p in posts)
    assert [p["created_at"] for p in posts] == sorted(p["created_at"] for p in posts)


def test_author_folds_on_the_real_posts_never_share_an_author(table):
    _, _, authors, _ = table
    splits = validation.author_folds(authors)
    assert sorted(np.concatenate([s.test for s in splits])) == list(range(len(authors)))
    for split in splits:
        assert not set(authors[split.train]) & set(authors[split.test])
    # the prolific accounts (over 100 posts each) do not unbalance the folds
    sizes = [len(s.test) for s in splits]
    assert max(sizes) < 1.5 * min(sizes)


def test_the_time_hold_out_tests_only_newer_posts(table):
    _, _, _, created = table
    split = validation.time_holdout(created, 0.2)
    assert created[split.test].min() > created[split.train].max()
    assert 0.15 * len(created) < len(split.test) < 0.25 * len(created)


def test_the_default_model_beats_the_mean_and_the_worst_ablation(chosen):
    fitted, report = chosen
    table = {row["model"]: row for row in report["comparison"]}
    assert report["r2"] > table["mean"]["r2"] + 0.1 and report["spearman"] > 0.3
    assert report["mae"] < report["baseline_mae"]
    assert report["r2"] >= min(a["r2"] for a in report["ablations"])
    # the time hold-out ran too, and chose with it
    assert {row["model"] for row in report["time_holdout"]} == set(table)
    assert fitted.estimator.name == report["model"]


def test_the_author_statistics_carry_the_signal(chosen):
    """On tweets most of what can be known is who posted: the author-only baseline is far above the
    mean under author folds, so a model that threw the author columns away would show here."""
    _, report = chosen
    table = {row["model"]: row for row in report["comparison"]}
    assert table["author"]["r2"] > 0.3 and table["author"]["spearman"] > 0.5


def test_the_interval_covers_about_eighty_percent_of_unseen_authors_posts(chosen):
    _, report = chosen
    assert 0.72 < report["interval_coverage"] < 0.88
    # small, middling and large accounts alike (measured 0.83, 0.79, 0.74 with ridge)
    assert all(0.65 < third["coverage"] < 0.92 for third in report["interval_by_followers"])
    # one band for everyone was 142 times wide in the median on these posts (101 with the track
    # record's better centre); the conditional one 76 from the author folds alone, 109 with the time
    # hold-out's misses weighed in (the price of covering the newest posts, below)
    assert report["interval_ratio"] < 125


def test_the_interval_holds_for_posts_newer_than_any_trained_on(table):
    """As Predict meets posts: trained on the older posts only (ridge, the default's choice here),
    the band covers 72-88% of the newest fifth too. Calibrated on the author folds alone it
    covered 0.64 of them: forward in time the model over-predicts these posts."""
    rows, likes, authors, created = table
    split = validation.time_holdout(created, 0.2)
    older = split.train
    fitted, _ = model.train(rows[older], likes[older], kind="ridge", groups=authors[older],
                            created_at=created[older], ids=older.astype(str))
    # what Predict's search answers: the nearest posts older than each, newer ones of the fifth included
    similar = neighbours.nearest(rows[:, features.FUSED], created)
    inside = []
    for i in split.test:
        found = tuple((float(score), likes[j]) for j, score in zip(*similar[i]))
        _, low, high = fitted.predict(rows[i], authors[i], str(i), int(created[i]), found)
        inside.append(low <= likes[i] <= high)
    assert 0.70 < np.mean(inside) < 0.90


def test_an_author_with_a_track_record_gets_a_narrower_interval_than_a_stranger(chosen, table):
    """The served model, as Predict runs it: the same post with its author's older posts known, and
    as if its author were unknown (train named the posts by their row numbers)."""
    fitted, _ = chosen
    rows, _, authors, created = table
    known, stranger = [], []
    for i in range(len(rows)):
        filled = fitted.track_record.fill(rows[i : i + 1], [str(i)], [authors[i]], [created[i]])
        if filled[0, history.COLUMNS[0]] == 0:
            continue  # the author's first post here
        _, low, high = fitted.predict(rows[i], authors[i], str(i), int(created[i]))
        known.append((1 + high) / (1 + low))
        _, low, high = fitted.predict(rows[i])
        stranger.append((1 + high) / (1 + low))
    assert len(known) > 500
    assert np.median(known) < 0.8 * np.median(stranger)
