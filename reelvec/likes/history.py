"""The author's track record: how many of the author's posts came before this one and their mean
log1p(likes).

Follower counts say little about how an account's posts land (a news account with millions of
followers may get a few dozen likes a post); the likes of the author's own earlier posts say it
directly. Never the post's own label: a post sees only its author's posts strictly older than it
(every other post of the author when its time is unknown), which is also all that serving has
when a new post is predicted. The served model keeps the training posts' (id, time, log-likes)
per author in its JSON artifact; an author it never saw gets 0 earlier posts.

A post without earlier posts gets the mean log-likes of the training posts as its "mean": 0 there
would read as the quietest author possible, and a linear model would place every stranger below
every known author.
"""

from collections import defaultdict

import numpy as np

from reelvec.likes import features

COLUMNS = [features.NAMES.index(name) for name in features.HISTORY]


class History:
    def __init__(self, posts: dict[str, list[tuple[str, int, float]]], total: float = 0.0, count: int = 0):
        self.posts = posts
        self.total, self.count = total, count  # of every post's log-likes: the strangers' fallback

    @classmethod
    def build(cls, ids, authors, created_at, target) -> "History":
        posts = defaultdict(list)
        for pid, author, t, y in zip(ids, authors, created_at, target):
            posts[str(author)].append((str(pid), int(t), float(y)))
        return cls(dict(posts), float(np.sum(target)), len(target))

    def columns(self, author: str, video_id: str, created_at: int) -> tuple[float, float]:
        posts = self.posts.get(author, [])
        earlier = [y for pid, t, y in posts if pid != video_id and (created_at <= 0 or 0 < t < created_at)]
        if earlier:
            return float(np.log1p(len(earlier))), float(np.mean(earlier))
        # the same number for every such post: a leave-one-out mean would differ by the post's own
        # label, and a model that standardizes its columns reads the label back from it
        return 0.0, self.total / self.count if self.count else 0.0

    def fill(self, rows: np.ndarray, ids, authors, created_at) -> np.ndarray:
        """rows with the history columns of each post set (a copy)."""
        rows = rows.copy()
        for i, (pid, author, t) in enumerate(zip(ids, authors, created_at)):
            rows[i, COLUMNS] = self.columns(str(author), str(pid), int(t))
        return rows

    def to_json(self) -> dict:
        return {"total": self.total, "count": self.count,
                "authors": {author: [list(post) for post in posts] for author, posts in self.posts.items()}}

    @classmethod
    def from_json(cls, body: dict) -> "History":
        posts = {author: [(str(p), int(t), float(y)) for p, t, y in found] for author, found in body.get("authors", {}).items()}
        return cls(posts, float(body.get("total", 0.0)), int(body.get("count", 0)))
