"""`reelvec train fusion`: the autoencoder fusion trained on the stack's stored vectors, then served
as the fused vector through a re-embed into a new collection (docs/versions.md).

The stored modality vectors are the training data, read page by page from the search service
(its address from `<data-dir>/stack.json`). The encoder half is saved as
`<data-dir>/fusion/autoencoder-<size>-<digest>.npz`, which the gateway loads by that name. No
video is decoded again: the re-embed fuses the stored vectors anew.
"""

import time
from pathlib import Path

import grpc
import numpy as np

from reelvec import fusion, limits, modalities
from reelvec.tools.training import stack
from reelvec.tools.training.autoencoder import Autoencoder
from reelvec.v1 import search_pb2, search_pb2_grpc

MIN_VIDEOS = 10
PAGE = 500


def stored_rows(search_address: str) -> np.ndarray:
    """The learned fusion's input (reelvec.fusion.concatenated) of every stored video."""
    rows, offset = [], ""
    with grpc.insecure_channel(search_address, options=limits.GRPC_OPTIONS) as channel:
        search = search_pb2_grpc.SearchStub(channel)
        while True:
            page = search.Scroll(search_pb2.ScrollRequest(offset=offset, limit=PAGE, with_vectors=True),
                                 timeout=stack.CALL_TIMEOUT)
            for video in page.videos:
                found = video.embeddings.vectors
                sources = {m: np.asarray(found[m].values) for m in modalities.SOURCES if m in found}
                if sources:
                    rows.append(fusion.concatenated(sources))
            offset = page.next_offset
            if not offset:
                break
    return np.stack(rows) if rows else np.zeros((0, sum(modalities.SOURCES.values())))


def train(stub, data_dir: Path, reembed: bool = True, progress=None) -> dict:
    data_dir = Path(data_dir)
    rows = stored_rows(stack.address(data_dir, "search"))
    if len(rows) < MIN_VIDEOS:
        raise ValueError(f"the store holds {len(rows)} videos: the fusion needs at least {MIN_VIDEOS}")
    started = time.monotonic()
    learned = Autoencoder(rows)
    path = learned.save(data_dir / "fusion")
    report = {
        "videos": len(rows),
        "fusion": path.stem,
        "epochs": len(learned.losses),
        "loss_first": learned.losses[0],
        "loss_last": learned.losses[-1],
        "train_seconds": round(time.monotonic() - started, 1),
    }
    if reembed:
        report.update(stack.reembed(stub, progress, fusion=path.stem))
    return report
