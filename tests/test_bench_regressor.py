"""The regressor benchmark's own logic on a few hundred posts: its rows are what the service
trains on, both engines run in processes of their own and report what they served. No timing is
asserted."""

import argparse

import numpy as np

from bench import regressor as suite
from reelvec.likes import features, validation


def test_the_posts_have_the_served_width_prolific_authors_and_an_order_in_time():
    rows, likes, authors, created = suite.posts(600)
    assert rows.shape == (600, len(features.NAMES)) and (likes >= 0).all()
    _, sizes = np.unique(authors, return_counts=True)
    assert sizes.max() > 20 and (sizes == 1).sum() > 50  # a few prolific authors, a long tail
    assert (np.diff(created) >= 0).all() and validation.time_holdout(created, 0.2) is not None
    assert np.array_equal(suite.posts(600)[0], rows)  # seeded


def test_a_small_run_trains_both_in_their_own_processes():
    """100 posts, the default choice among the fast kinds only: gbm's fits take minutes at this
    width on 2 cores."""
    section = suite.run(argparse.Namespace(quick=True, regressor_posts=100, regressor_kinds="ridge,author,mean"))
    (ours, theirs) = section.rows
    assert ours[5] in {"ridge", "author", "mean"} and theirs[5] == "RidgeCV"
    assert all(row[2] > 0 and row[3] > 0 and row[4] > 50 for row in section.rows)  # wall, CPU, RSS
    assert set(section.metrics) == {"regressor_train_s", "regressor_train_peak_mb",
                                    "regressor_train_s_sklearn", "regressor_train_peak_mb_sklearn"}
