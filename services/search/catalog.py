"""The collections of one search service, the alias that reads use (docs/versions.md), and how
the settings open them.

One collection per set of model versions, so vectors of two encoder or fusion versions never meet
in one index. `<data-dir>/search/catalog.json` records which collections exist, the versions each
holds, and which one the alias points at: qdrant-edge has no aliases, so this file is the alias
there; on a Qdrant server the real collection alias moves with it, for tools that read Qdrant
directly. The file is replaced atomically, so a crash leaves the old alias or the new one.
"""

import dataclasses
import json
import os
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from reelvec import errors, modalities
from services.search.settings import SearchSettings
from services.search.stores import base
from services.search.stores.quantization import Quantization

ALIAS = "videos"
REQUANTIZE_ALL = "all"
# BUILDING collections get the gateway's dual writes while a re-embed fills them; a RETIRED one
# (the alias's previous target, kept when asked) gets no writes and only ages.
ACTIVE, BUILDING, RETIRED = "active", "building", "retired"
# The versions that decide what a vector means; whisper only changes the words the text model reads.
VECTOR_MODELS = (modalities.VISUAL, modalities.AUDIO, modalities.TEXT, modalities.FUSED)
_NAME = re.compile(r"[A-Za-z0-9_\-]{1,64}")


@dataclasses.dataclass
class Collection:
    name: str
    state: str
    model_versions: dict[str, str]
    store: base.VideoStore
    dims: dict[str, int]
    quantization: Quantization | None = None  # the fused vector's, chosen when it was created


def vector_versions(versions) -> dict[str, str]:
    return {k: v for k, v in dict(versions).items() if k in VECTOR_MODELS and v}


def models_behind(vector: str) -> tuple[str, ...]:
    """The models a stored vector depends on: the fused one mixes them all."""
    return VECTOR_MODELS if vector == modalities.FUSED else (vector,)


def conflicts(expected: dict[str, str], given: dict[str, str], keys=VECTOR_MODELS) -> list[str]:
    """The models whose versions differ where both sides name one."""
    return [k for k in keys if expected.get(k) and given.get(k) and expected[k] != given[k]]


class Catalog:
    """Thread-safe. `open_store(name, dims)` opens (creating if needed) the store of a collection;
    `point_alias(name)`, when given, moves a server-side alias too.

    With `quantization`, `open_store` takes a collection's quantization as a third argument: each
    collection keeps the one it was created with (recorded here), and `quantization` is what new
    collections get, and those recorded before the setting existed (at their next open). A changed
    setting rebuilds no collection's index unless `requantize` names it (or is "all"): a large
    index takes minutes to hours to rebuild (docs/search.md, Quantization)."""

    def __init__(
        self,
        root: Path,
        open_store: Callable[..., base.VideoStore],
        default: str,
        point_alias: Callable[[str], None] | None = None,
        on_close: Callable[[], None] | None = None,
        quantization: Quantization | None = None,
        requantize: Iterable[str] = (),
    ):
        self._path = Path(root) / "catalog.json"
        self._open_store = open_store
        self._quantization = quantization
        self._requantize = set(requantize)
        self._point_alias = point_alias
        self._on_close = on_close
        self._lock = threading.RLock()
        if self._path.exists():
            state = json.loads(self._path.read_text())
        else:  # a data dir from before versions: its one collection becomes the active one
            state = {"active": default, "collections": {default: {"model_versions": {}}}}
        self._active = state["active"]
        unknown = self._requantize - set(state["collections"]) - {REQUANTIZE_ALL}
        if unknown:
            raise errors.InvalidInput(f"requantize names {', '.join(sorted(unknown))}, not a collection here: "
                                      f"name some of {', '.join(state['collections'])}, or {REQUANTIZE_ALL}")
        self._collections = {}
        for name, entry in state["collections"].items():
            dims = dict(entry.get("dims") or modalities.DIMS)
            state_of = ACTIVE if name == self._active else entry.get("state", BUILDING)
            recorded = entry.get("quantization")
            retake = bool(self._requantize & {name, REQUANTIZE_ALL})
            quantization = Quantization.from_dict(recorded) if recorded and not retake else self._quantization
            store = self._open(name, dims, quantization)
            self._collections[name] = Collection(name, state_of, dict(entry["model_versions"]), store, dims, quantization)
        active = self._collections[self._active]
        if not active.model_versions:  # learn them from what is stored
            stored, _ = active.store.scroll(limit=1)
            if stored:
                active.model_versions = vector_versions(stored[0].payload.get("model_versions", {}))
        self._save()
        if self._point_alias:
            self._point_alias(self._active)

    def _open(self, name: str, dims: dict[str, int], quantization: Quantization | None) -> base.VideoStore:
        if quantization is None:
            return self._open_store(name, dims)
        return self._open_store(name, dims, quantization)

    def _save(self) -> None:
        state = {
            "alias": ALIAS,
            "active": self._active,
            "collections": {
                c.name: {"state": c.state, "model_versions": c.model_versions, "dims": c.dims}
                | ({"quantization": c.quantization.as_dict()} if c.quantization else {})
                for c in self._collections.values()
            },
        }
        self._path.parent.mkdir(parents=True, exist_ok=True)
        partial = self._path.with_suffix(".json.partial")
        partial.write_text(json.dumps(state, indent=2))
        os.replace(partial, self._path)

    @property
    def active(self) -> Collection:
        return self._collections[self._active]

    def collections(self) -> list[Collection]:
        with self._lock:
            return list(self._collections.values())

    def get(self, name: str = "") -> Collection:
        """The named collection; the alias's when `name` is empty or the alias itself."""
        if not name or name == ALIAS:
            return self.active
        found = self._collections.get(name)
        if found is None:
            raise errors.NotFound(f"no collection {name!r}: ListCollections shows the ones there are")
        return found

    def check(self, collection: Collection, versions, keys=VECTOR_MODELS, adopt: bool = False) -> None:
        """Refuses vectors made by other model versions than the collection holds. With `adopt`
        (writes), versions the collection does not name yet become its own."""
        given = vector_versions(versions)
        with self._lock:
            wrong = conflicts(collection.model_versions, given, keys)
            if wrong:
                detail = ", ".join(f"{k} {given[k]} (holds {collection.model_versions[k]})" for k in wrong)
                raise errors.Precondition(
                    f"collection {collection.name!r} holds vectors of other model versions: {detail}; "
                    "embed with the collection's versions (ListCollections) or re-embed"
                )
            missing = {k: v for k, v in given.items() if k not in collection.model_versions}
            if adopt and missing:
                collection.model_versions.update(missing)
                self._save()

    def frames_head(self, collection: Collection) -> str:
        """The descriptor head of the collection's frames; "" before any video named one."""
        with self._lock:
            return collection.model_versions.get(modalities.DESCRIPTOR, "")

    def set_frames_head(self, collection: Collection, head: str) -> None:
        with self._lock:
            collection.model_versions[modalities.DESCRIPTOR] = head
            self._save()

    def create(self, name: str, versions, dims=None) -> Collection:
        """`dims`: sizes that differ from modalities.DIMS (a learned fusion's smaller fused vector)."""
        if not _NAME.fullmatch(name) or name == ALIAS:
            raise errors.InvalidInput(f"collection name {name!r}: use 1-64 letters, digits, _ or -, not {ALIAS!r}")
        versions = vector_versions(versions)
        unknown = set(dims or {}) - set(modalities.DIMS)
        if unknown or any(size <= 0 for size in (dims or {}).values()):
            raise errors.InvalidInput(f"dims: positive sizes of {', '.join(modalities.DIMS)} only")
        dims = {**modalities.DIMS, **dict(dims or {})}
        with self._lock:
            existing = self._collections.get(name)
            if existing is not None:
                if conflicts(existing.model_versions, versions) or existing.dims != dims:
                    raise errors.Precondition(f"collection {name!r} exists with other model versions or sizes")
                return existing
            created = Collection(name, BUILDING, versions, self._open(name, dims, self._quantization), dims,
                                 self._quantization)
            self._collections[name] = created
            self._save()
            return created

    def switch(self, name: str, drop_previous: bool) -> None:
        if not name or name == ALIAS:
            raise errors.InvalidInput("name the collection the alias should point at")
        with self._lock:
            target = self.get(name)
            previous = self.active
            if target is previous:
                return
            if self._point_alias:
                self._point_alias(target.name)
            self._active, target.state, previous.state = target.name, ACTIVE, RETIRED
            if drop_previous:
                del self._collections[previous.name]
            self._save()
        if drop_previous:
            previous.store.drop()

    def drop(self, name: str) -> bool:
        with self._lock:
            found = self._collections.get(name)
            if found is None:
                return False
            if found is self.active:
                raise errors.Precondition(f"{name!r} is the collection the alias points at: switch first")
            del self._collections[name]
            self._save()
        found.store.drop()
        return True

    def close(self) -> None:
        with self._lock:
            for collection in self._collections.values():
                collection.store.close()
        if self._on_close:
            self._on_close()


def open_edge_store(settings: SearchSettings, path: Path, dims: dict[str, int],
                    quantization: Quantization | None = None) -> base.VideoStore:
    """Blocking: opens (or creates) one collection's shard as the service does; `quantization`
    None: the settings'."""
    from services.search.stores.edge import EdgeStore

    store = EdgeStore(
        path,
        dims,
        optimize_after=settings.optimize_after,
        idle_seconds=settings.optimize_idle_seconds,
        optimize_max_wait=settings.optimize_max_wait_seconds,
        search_threads=settings.search_threads,
        frame_rescore=settings.frame_rescore,
        hnsw_m=settings.hnsw_m,
        hnsw_ef_construct=settings.hnsw_ef_construct,
        hnsw_ef=settings.hnsw_ef,
        min_free_mb=settings.min_free_mb,
        fused_quantization=quantization or Quantization.of(settings),
        max_segment_mb=settings.max_segment_mb,
    )
    store.optimize()  # indexes whatever an earlier run left unindexed
    return store


def _names(listed: str) -> list[str]:
    return [name.strip() for name in listed.split(",") if name.strip()]


def _edge_catalog(settings: SearchSettings, root: Path) -> Catalog:
    return Catalog(
        root,
        lambda name, dims, quantization: open_edge_store(settings, root / "edge" / name, dims, quantization),
        settings.collection,
        quantization=Quantization.of(settings),
        requantize=_names(settings.requantize),
    )


def _qdrant_catalog(settings: SearchSettings, root: Path) -> Catalog:
    from services.search.stores.qdrant import Connection, QdrantStore  # qdrant-client loads only when chosen

    if settings.qdrant_url:
        connection = Connection(url=settings.qdrant_url, api_key=settings.qdrant_api_key,
                                replication_factor=settings.qdrant_replication_factor)
    else:
        connection = Connection(path=str(root / "qdrant"))
    return Catalog(
        root,
        lambda name, dims, quantization: QdrantStore(
            name, dims, connection=connection, fused_quantization=quantization, hnsw_m=settings.hnsw_m,
            hnsw_ef_construct=settings.hnsw_ef_construct, hnsw_ef=settings.hnsw_ef,
            max_segment_mb=settings.max_segment_mb),
        settings.collection,
        point_alias=lambda name: connection.point_alias(ALIAS, name),
        on_close=connection.close,
        quantization=Quantization.of(settings),
        requantize=_names(settings.requantize),
    )


CATALOGS = {"edge": _edge_catalog, "qdrant": _qdrant_catalog}


def open_catalog(settings: SearchSettings) -> Catalog:
    """Blocking: opens every collection's store."""
    return CATALOGS[settings.store](settings, Path(settings.data_dir) / "search")
