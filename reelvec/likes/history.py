"""The author's track record: how many of the author's posts came before this one and their mean
log1p(likes).

Follower counts say little about how an account's posts land (a news account with millions of
followers may get a few dozen likes a post); the likes of the author's own earlier posts say it
directly. Never the post's own label: a post sees only its author's posts strictly older than it
(every other post of the author when its time is unknown), which is also all that serving has
when a new post is predicted. The served model keeps the training posts' (id, time, log-likes)
per author in its JSON artifact; an author it never saw gets 0 earlier posts.
"""

from collections import defaultdict

import numpy as np

from reelvec.likes import features

COLUMNS = [features.NAMES.index(name) for name in features.HISTORY]


def _columns(posts: list[tuple[str, int, float]], video_id: str, created_at: int) -> tuple[float, float]:
    earlier = [y for pid, t, y in posts if pid != video_id and (created_at <= 0 or 0 < t < created_at)]
    return float(np.log1p(len(earlier))), float(np.mean(earlier)) if earlier else 0.0


class History:
    def __init__(self, posts: dict[str, list[tuple[str, int, float]]]):
        self.posts = posts

    @classmethod
    def build(cls, ids, authors, created_at, target) -> "History":
        posts = defaultdict(list)
        for pid, author, t, y in zip(ids, authors, created_at, target):
            posts[str(author)].append((str(pid), int(t), float(y)))
        return cls(dict(posts))

    def fill(self, rows: np.ndarray, ids, authors, created_at) -> np.ndarray:
        """rows with the history columns of each post set (a copy)."""
        rows = rows.copy()
        for i, (pid, author, t) in enumerate(zip(ids, authors, created_at)):
            rows[i, COLUMNS] = _columns(self.posts.get(str(author), []), str(pid), int(t))
        return rows

    def to_json(self) -> dict:
        return {author: [list(post) for post in posts] for author, posts in self.posts.items()}

    @classmethod
    def from_json(cls, body: dict) -> "History":
        return cls({author: [(str(p), int(t), float(y)) for p, t, y in posts] for author, posts in body.items()})
