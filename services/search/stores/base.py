"""The store interface every backend implements, and the plain records it speaks.

The store knows nothing of protobuf: the servicer converts. It does know where the filterable
fields sit in the payload (which mirrors the VideoRecord message, see services/search/records.py),
because it indexes them.
"""

import abc
import base64
import dataclasses
import logging
import uuid
from collections.abc import Sequence

import numpy as np

from reelvec import copies, errors, modalities

log = logging.getLogger(__name__)

# A fixed namespace so the same video id maps to the same point id in every process and backend.
_POINT_NAMESPACE = uuid.UUID("6f1b3c1e-2f43-5a8e-9a55-2d6c1b0f7e21")

# The graph, both backends: Qdrant's defaults, right up to a few hundred thousand videos. At 1M they
# cap recall@10 near 0.95 whatever the search ef; past 1M take m 32, ef_construct 128 (docs/search.md,
# Settings for a million videos, and the arithmetic for ten million).
HNSW_M, HNSW_EF_CONSTRUCT = 16, 100
# Qdrant's default search ef is ef_construct (100); 128 bought +0.25 points of recall@10 for ~0.1 ms.
HNSW_EF = 128

# Payload key that carries the caller's string id: Qdrant point ids must be uints or UUIDs.
VIDEO_ID = "video_id"

# Filterable payload paths, and the index type each one gets.
AUTHOR_ID = "metadata.author.id"
HASHTAGS = "metadata.hashtags"
LIKES = "metadata.likes"
CREATED_AT = "metadata.created_at"
CONTENT_SHA256 = "content_sha256"
INCOMPLETE = "incomplete"
KEYWORD, INTEGER = "keyword", "integer"
INDEXED_FIELDS = {
    VIDEO_ID: KEYWORD,
    AUTHOR_ID: KEYWORD,
    HASHTAGS: KEYWORD,
    LIKES: INTEGER,
    CREATED_AT: INTEGER,
    CONTENT_SHA256: KEYWORD,
    INCOMPLETE: KEYWORD,
}


def point_id(video_id: str) -> uuid.UUID:
    return uuid.uuid5(_POINT_NAMESPACE, video_id)


# Frame descriptors (reelvec/copies.py) live beside the videos, in a collection (or shard) of their
# own: one point per frame, so that each query frame finds its nearest stored frames in the engine's
# index, and the video points (what Query, Scroll and count see) stay one per video. A frame point's
# payload holds its video's id (keyword-indexed: frames are fetched and deleted by video) and time.
#
# Beside them, one track point per video, without a vector, holds what frames_of reads back: the
# times and the rows, the descriptors again as little-endian float32 bytes in base64. Either client
# hands a stored vector back as a Python float per value, about 3 CPU-ms for a video of 30 frames
# (most of a FindCopies that fetches a dozen candidates), where the track decodes in about 0.5 ms
# and is one read by id. The rows stay out of the frame points' payload: a frame search reads the
# payload of each of its hits, and 7 KB each made it twice as slow. The price is disk: each
# descriptor is kept twice (bench copies measures the frames shard).
#
# A frame point's id begins with its video's key (video_key), so that a frame search groups its
# hits by video without their payload and reads one payload per video found (name_hits): the
# payloads are mapped files, and a cold read per hit was most of the search (BENCHMARKS.md, run 11).
FRAME = "frame"  # the frame collection's one named vector, of modalities.FRAME_DIM values
FRAME_TIME = "time"
TRACK_TIMES, TRACK_ROWS = "times", "rows"
FRAME_INDEXED_FIELDS = {VIDEO_ID: KEYWORD}
_FRAME_NAMESPACE = uuid.UUID("0b8f7c52-3a51-4f0e-8d3c-6a0c2f9e4b17")


def stale_frames(size: int, where: dict[str, str]) -> bool:
    """A frame index of another size holds descriptors of an older recipe (the visual model's rows
    before they were whitened): useless against today's queries, so a store opening one drops it,
    logged here; the videos it held have no frames until indexed again (FindCopies by id says so)."""
    if size == modalities.FRAME_DIM:
        return False
    log.warning("frame index of an older descriptor recipe dropped: re-index its videos to find their copies",
                extra={**where, "size": size})
    return True


def video_key(video_id: str) -> bytes:
    """96 bits of a name-based UUID of the video: the first 12 bytes of its frame points' ids."""
    return uuid.uuid5(_FRAME_NAMESPACE, video_id).bytes[:12]


def frame_point_id(video_id: str, index: int) -> uuid.UUID:
    """Deterministic, so that a video's new frames overwrite its old ones in place: the video's
    key, then the frame's index."""
    return uuid.UUID(bytes=video_key(video_id) + index.to_bytes(4, "big"))


def name_hits(answers: list[list[tuple[object, float]]], video_ids_of) -> list[list[tuple[str, float]]]:
    """Per query row, (frame point id, score) pairs as (video id, score): `video_ids_of(point ids)`
    reads one hit's payload per video key ({str(point id): video id}). A frame written under
    another id scheme is its own key, so it is named alone: right, one read more."""
    keyed = [[(_key(point), score, point) for point, score in hits] for hits in answers]
    first: dict[bytes, str] = {}
    for hits in keyed:
        for key, _, point in hits:
            if key not in first:
                first[key] = str(point)
    named = video_ids_of(list(first.values())) if first else {}
    video_of = {key: named[point] for key, point in first.items() if point in named}
    return [[(video_of[key], score) for key, score, _ in hits if key in video_of] for hits in keyed]


def _key(point: uuid.UUID | str) -> bytes:
    """Edge hands ids back as UUIDs, qdrant-client as strings."""
    return (point if isinstance(point, uuid.UUID) else uuid.UUID(point)).bytes[:12]


def track_point_id(video_id: str) -> uuid.UUID:
    """No frame's name starts with a letter: the two never meet."""
    return uuid.uuid5(_FRAME_NAMESPACE, f"track:{video_id}")


def frame_points(video_id: str, track: copies.Track) -> list[tuple[uuid.UUID, dict[str, list[float]], dict]]:
    """(point id, vectors, payload) of each frame and of the track point (no vectors), for either
    client to wrap in its point type; none for a track without frames."""
    if not len(track):
        return []
    rows = track.vectors.astype("<f4")
    whole = {VIDEO_ID: video_id, TRACK_TIMES: track.times.tolist(),
             TRACK_ROWS: base64.b64encode(rows.tobytes()).decode("ascii")}
    return [(track_point_id(video_id), {}, whole)] + [
        (frame_point_id(video_id, i), {FRAME: row}, {VIDEO_ID: video_id, FRAME_TIME: time})
        for i, (time, row) in enumerate(zip(track.times.tolist(), rows.tolist()))
    ]


def tracks(points) -> dict[str, copies.Track]:
    """Track points or records of either client, with their payload, as one Track each."""
    found = {}
    for point in points:
        payload = point.payload  # edge converts the whole payload at each access
        times = payload[TRACK_TIMES]
        rows = np.frombuffer(base64.b64decode(payload[TRACK_ROWS]), "<f4").reshape(len(times), -1)
        found[payload[VIDEO_ID]] = copies.Track.of(times, rows)
    return found


def frame_tracks(points) -> dict[str, copies.Track]:
    """Frame points or records of either client, with their vector and payload, of any videos in
    any order, as one Track each: the frames of a video written without a track point (by an
    earlier version)."""
    rows: dict[str, list[tuple[float, list[float]]]] = {}
    for point in points:
        payload = point.payload
        rows.setdefault(payload[VIDEO_ID], []).append((payload[FRAME_TIME], point.vector[FRAME]))
    found = {}
    for video_id, frames in rows.items():
        frames.sort(key=lambda frame: frame[0])
        times, vectors = zip(*frames)
        found[video_id] = copies.Track.of(times, np.asarray(vectors, np.float32))
    return found


@dataclasses.dataclass
class StoredVideo:
    id: str
    # only the modalities the video has
    vectors: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    payload: dict = dataclasses.field(default_factory=dict)
    # On upsert: the frames that replace the stored ones; None leaves the stored ones as they are (a
    # record update without frames, such as a background completion, must not lose them). Reads
    # leave it None: frames_of fetches them.
    frames: copies.Track | None = None

    @classmethod
    def from_point(cls, point, with_vectors: bool) -> "StoredVideo":
        """From a Qdrant point/record of either client: the string id lives in the payload."""
        payload = dict(point.payload)
        video_id = payload.pop(VIDEO_ID)
        vectors = dict(point.vector) if with_vectors and point.vector else {}
        return cls(id=video_id, vectors=vectors, payload=payload)


@dataclasses.dataclass
class Range:
    """Inclusive; None is an open bound."""

    gte: float | None = None
    lte: float | None = None


@dataclasses.dataclass
class Filter:
    author_ids: list[str] = dataclasses.field(default_factory=list)  # any of
    hashtags: list[str] = dataclasses.field(default_factory=list)  # any of
    likes: Range | None = None
    created_at: Range | None = None
    exclude_ids: list[str] = dataclasses.field(default_factory=list)
    content_sha256: str = ""  # exact match when set
    only_with_likes: bool = False  # videos whose likes are known (regressor training data)
    only_incomplete: bool = False  # videos stored degraded, waiting to be completed


@dataclasses.dataclass
class Hit:
    id: str
    score: float  # cosine similarity, higher is closer
    video: StoredVideo | None = None  # payload only, when asked for

    @classmethod
    def from_point(cls, point, with_payload: bool | tuple[str, ...]) -> "Hit":
        """From a scored point of either client, whose payload holds at least the string id."""
        if not with_payload:
            return cls(id=point.payload[VIDEO_ID], score=point.score)
        # each .payload read converts the whole payload again (qdrant-edge): once per point
        video = StoredVideo.from_point(point, with_vectors=False)
        return cls(id=video.id, score=point.score, video=video)


class VideoStore(abc.ABC):
    """A collection of videos with named vectors, searched by cosine similarity.

    Implementations are thread-safe: the servicer calls them from worker threads.
    """

    # Reads (get, query) that finish in about a millisecond without waiting on I/O may run on the
    # event loop: a worker-thread hop costs more than it saves when the engine holds the GIL anyway.
    fast_reads = False

    @abc.abstractmethod
    def upsert(self, video: StoredVideo) -> bool:
        """Stores or replaces (vectors and payload) the video, and its frames when it carries
        them; True when the id was new. The frames are written first: a failure leaves the old
        video point, and the retry writes its frames again."""

    @abc.abstractmethod
    def get(self, video_id: str, with_vectors: bool | list[str] = False) -> StoredVideo | None:
        """`with_vectors`: all of them, none, or the named ones."""

    @abc.abstractmethod
    def delete(self, video_id: str) -> bool:
        """Removes the video and its frames (its frames first, so that none outlives the video);
        True when the id existed."""

    @abc.abstractmethod
    def drop_frames(self) -> None:
        """Removes every video's frames and keeps the videos: descriptors of another head than
        today's queries' (the server's Upsert, docs/copies.md)."""

    @abc.abstractmethod
    def frames_of(self, video_ids: set[str]) -> dict[str, copies.Track]:
        """The stored frames of each video that has any, in one fetch."""

    @abc.abstractmethod
    def search_frames(
        self, vectors: np.ndarray, k: int, exclude_id: str = "", ef: int | None = None, min_score: float | None = None,
    ) -> list[list[tuple[str, float]]]:
        """For each row of `vectors` [n, visual dim], its k nearest stored frames as (video id,
        cosine), best first, never a frame of `exclude_id`; one engine call where the backend can.
        `ef`: how many candidates each row's graph walk keeps (at least k; None: the store's own);
        `min_score`: none under it (the copy vote's MATCH_MIN: fewer hits to name)."""

    def search(
        self, modality: str, vector: list[float], filter: Filter | None, k: int,
        with_payload: bool | tuple[str, ...],
    ) -> list[Hit]:
        """The k nearest videos that carry `modality`, best first."""
        (hits,) = self.search_batch([Query(modality, vector, filter=filter, k=k, with_payload=with_payload)])
        return hits

    @abc.abstractmethod
    def search_batch(self, searches: Sequence["Query"]) -> list[list[Hit]]:
        """`search` for each (vector) query, in order, in as few engine calls as the backend can."""

    @abc.abstractmethod
    def stored_vectors(self, video_ids: set[str], names: set[str]) -> dict[str, dict[str, list[float]]]:
        """The named vectors each video has, for the videos that exist, in one fetch."""

    @abc.abstractmethod
    def scroll(
        self,
        offset: str | None = None,
        limit: int = 100,
        with_vectors: bool | list[str] = False,
        filter: Filter | None = None,
    ) -> tuple[list[StoredVideo], str | None]:
        """A page in a stable backend order, and an opaque cursor to the next (None at the end)."""

    @abc.abstractmethod
    def count(self) -> int:
        """Videos, not frames."""

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def drop(self) -> None:
        """Closes the store and deletes everything in it, frames included."""

    def optimize(self) -> None:
        """Builds pending indexes now. Backends that index on their own have nothing to do."""

    def query(
        self,
        modality: str,
        vector: list[float] | None = None,
        video_id: str | None = None,
        filter: Filter | None = None,
        k: int = 10,
        with_payload: bool | tuple[str, ...] = False,
        exclude_id: str = "",
    ) -> list[Hit]:
        """Nearest neighbours of a vector, or of a stored video's own vector (itself excluded),
        without `exclude_id`."""
        (result,) = self.query_batch([Query(modality, vector, video_id, filter, k, with_payload, exclude_id)])
        if isinstance(result, errors.ReelvecError):
            raise result
        return result

    def query_batch(self, queries: Sequence["Query"]) -> list[list[Hit] | errors.ReelvecError]:
        """Each query's hits, or the error that query alone met (NotFound for an unknown id), in
        order. The query videos' vectors come in one fetch and the searches run as one batch where
        the backend has one: on the embedded engine that is a third less CPU a query than one call each
        (docs/search.md, Batched queries)."""
        by_id = [q for q in queries if q.video_id is not None]
        stored = {}
        if by_id:
            stored = self.stored_vectors({q.video_id for q in by_id}, {q.modality for q in by_id})
        results: list = []
        searches: list[tuple[int, Query, Query]] = []  # (slot, as asked, as searched)
        for query in queries:
            vector, exclude_id = query.vector, query.exclude_id
            if query.video_id is not None:
                vectors = stored.get(query.video_id)
                if vectors is None:
                    results.append(errors.NotFound(f"no video with id {query.video_id!r}"))
                    continue
                if query.modality not in vectors:
                    results.append(errors.NotFound(f"video {query.video_id!r} has no {query.modality} vector"))
                    continue
                vector, exclude_id = vectors[query.modality], query.video_id
            # One more hit and that one dropped: cheaper than a has-id filter in the engine (about
            # 0.1 ms a search at 5k videos).
            k = query.k + 1 if exclude_id else query.k
            searched = Query(query.modality, vector, None, query.filter, k, query.with_payload, exclude_id)
            searches.append((len(results), query, searched))
            results.append(None)
        found = self.search_batch([searched for _, _, searched in searches]) if searches else []
        for (slot, query, searched), hits in zip(searches, found):
            if searched.exclude_id:
                hits = [hit for hit in hits if hit.id != searched.exclude_id][: query.k]
            results[slot] = hits
        return results


@dataclasses.dataclass(frozen=True)
class Query:
    """The k nearest videos to `vector`, or to the stored video `video_id`'s own vector (that
    video left out), and never `exclude_id`. `with_payload`: the hits' whole payload, none (the id
    alone), or the top-level keys named; a point without a key named has its payload without it."""

    modality: str
    vector: list[float] | None = None
    video_id: str | None = None
    filter: Filter | None = None
    k: int = 10
    with_payload: bool | tuple[str, ...] = False
    exclude_id: str = ""

    def __post_init__(self):
        if (self.vector is None) == (self.video_id is None):
            raise ValueError("query needs exactly one of vector and video_id")


def payload_selector(with_payload: bool | tuple[str, ...]) -> bool | list[str]:
    """A Query's `with_payload` as either client takes it: the string id is always read."""
    if with_payload is True:
        return True
    return [VIDEO_ID, *(with_payload or ())]


def parse_offset(offset: str | None) -> uuid.UUID | None:
    if not offset:
        return None
    try:
        return uuid.UUID(offset)
    except ValueError:
        raise errors.InvalidInput(f"bad scroll offset {offset!r}: use a next_offset") from None


def payload_value(payload: dict, path: str, default=None):
    """The value at a dotted payload path such as HASHTAGS, or `default` when absent."""
    for key in path.split("."):
        if not isinstance(payload, dict) or key not in payload:
            return default
        payload = payload[key]
    return payload
