"""Real posts with real like counts, for the likes model's tests and measurements.

Synthetic rows test the regressor's mechanics; its accuracy must be shown on real labels. Debian's
`r-cran-rtweet` package (MIT; 2017-2020 Michael W. Kearney, Andrew Heiss, Francois Briatte) ships
the recorded answers of Twitter's API v1.1 that its tests replay (vcr cassettes in
usr/share/doc/r-cran-rtweet/tests/fixtures): about 1,800 original tweets by about 1,000 accounts,
each with its like and retweet counts, its text and hashtags, its time, and its author's follower,
following and post counts. The tweets' text belongs to their authors, under Twitter's terms.

`python -m reelvec.tools.real_posts FOLDER` (part of `make media`) downloads the pinned .deb with
`apt-get download` (no install, no R), checks its sha256, and writes FOLDER/posts.jsonl: one
original tweet a line (retweets left out: their counts are the retweeted post's). Nothing reads
the network after that; a second run with the file in place does nothing.
"""

import argparse
import base64
import datetime
import gzip
import io
import json
import sys
import tarfile
import tempfile
from pathlib import Path

from reelvec import debian, modalities
from reelvec.v1 import common_pb2

PACKAGE = "r-cran-rtweet=1.1.0+dfsg-1"
DEB_SHA256 = "69eb4c7d6e281d0a096ed8e8f1266059df5ac9fe804d07a43288b227a08de2ba"
FIXTURES = "./usr/share/doc/r-cran-rtweet/tests/fixtures/"
POSTS = "posts.jsonl"
TWITTER_TIME = "%a %b %d %H:%M:%S %z %Y"  # "Tue Nov 08 14:02:11 +0000 2022"


def _cassettes(deb: bytes):
    """Yields (fixture name, response body text) for every recorded API answer."""
    with tarfile.open(fileobj=io.BytesIO(debian.member(deb, "data.tar"))) as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            if not (member.isfile() and member.name.startswith(FIXTURES) and ".json" in member.name):
                continue
            raw = archive.extractfile(member).read()
            cassette = json.loads(gzip.decompress(raw) if member.name.endswith(".gz") else raw)
            for interaction in cassette.get("http_interactions", []):
                body = interaction.get("response", {}).get("body", {})
                text = body.get("string") or ""
                if body.get("base64_string"):
                    text = base64.b64decode(body["base64_string"]).decode("utf-8", "replace")
                if text:
                    yield Path(member.name).name, text


def _tweets(value):
    """Every tweet object inside a decoded answer, nested ones (quoted, retweeted) included."""
    if isinstance(value, dict):
        if "favorite_count" in value and "id_str" in value and isinstance(value.get("user"), dict):
            yield value
        for child in value.values():
            yield from _tweets(child)
    elif isinstance(value, list):
        for child in value:
            yield from _tweets(child)


def _post(tweet: dict) -> dict:
    user = tweet["user"]
    created = datetime.datetime.strptime(tweet["created_at"], TWITTER_TIME)
    return {
        "id": tweet["id_str"],
        "author_id": user["id_str"],
        "author_name": user.get("screen_name", ""),
        "author_followers": int(user.get("followers_count") or 0),
        "author_following": int(user.get("friends_count") or 0),
        "author_posts": int(user.get("statuses_count") or 0),
        "text": tweet.get("full_text") or tweet.get("text") or "",
        "hashtags": [h["text"] for h in tweet.get("entities", {}).get("hashtags", [])],
        "lang": tweet.get("lang") or "",
        "created_at": int(created.timestamp()),
        "likes": int(tweet["favorite_count"]),
        "retweets": int(tweet.get("retweet_count") or 0),
    }


def parse(deb: bytes) -> list[dict]:
    """The original tweets the package's fixtures hold, one per id, oldest first. A tweet recorded
    in several answers keeps the record with the most likes (the latest: counts only grow)."""
    best: dict[str, dict] = {}
    for _, body in _cassettes(deb):
        try:
            answer = json.loads(body)
        except json.JSONDecodeError:
            continue  # error pages and non-JSON answers the tests also replay
        for tweet in _tweets(answer):
            if "retweeted_status" in tweet:
                continue
            post = _post(tweet)
            if post["id"] not in best or post["likes"] > best[post["id"]]["likes"]:
                best[post["id"]] = post
    return sorted(best.values(), key=lambda p: (p["created_at"], p["id"]))


def posts(folder: Path) -> list[dict]:
    """The posts written by fetch; FileNotFoundError says how to get them."""
    path = Path(folder) / POSTS
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python -m reelvec.tools.real_posts {folder}` (make media does)")
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def fetch(folder: Path) -> list[dict]:
    folder = Path(folder)
    if not (folder / POSTS).exists():
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as download:
            found = parse(debian.checked(debian.download(PACKAGE, Path(download)), DEB_SHA256, PACKAGE))
        partial = folder / (POSTS + ".partial")
        partial.write_text("".join(json.dumps(post, ensure_ascii=False) + "\n" for post in found))
        partial.replace(folder / POSTS)
    return posts(folder)


def record(post: dict, text_vector=None) -> common_pb2.VideoRecord:
    """A post as the stored video the regressor trains on: the tweet's text is the caption, its
    author's counts the author statistics (Twitter gives no likes received per author: 0, unknown),
    and its text embedding, when given, the only vector (a tweet has no video or sound)."""
    metadata = common_pb2.VideoMetadata(
        id=post["id"], caption=post["text"], hashtags=post["hashtags"], likes=post["likes"],
        created_at=post["created_at"],
        author=common_pb2.AuthorStats(id=post["author_id"], followers=post["author_followers"],
                                      following=post["author_following"], videos=post["author_posts"]),
    )
    found = common_pb2.VideoRecord(id=post["id"], metadata=metadata)
    if text_vector is not None:
        found.embeddings.vectors[modalities.TEXT].values.extend(text_vector)
    return found


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="extract real posts with like counts from Debian's r-cran-rtweet")
    parser.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    try:
        found = fetch(args.folder)
    except RuntimeError as exc:
        sys.exit(f"real posts: {exc}")
    authors = len({post["author_id"] for post in found})
    print(f"real posts: {len(found)} posts by {authors} authors: {args.folder / POSTS}")


if __name__ == "__main__":
    main()
