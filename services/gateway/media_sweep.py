"""The orphan sweep: uploads and thumbnails that no record points at any more are deleted.

They appear when a gateway dies between writing an upload and upserting its record, or when a
partial write is left behind. Deletes already remove an upload with its last record
(server.py); this catches what a crash left. A file is looked at only once it is older than
`orphan_seconds` (an hour by default), far longer than any Index takes between the two steps, and
an Index of the same bytes touches the file again (MediaStore.put).
"""

import asyncio
import logging

from reelvec import clients, errors
from reelvec.v1 import common_pb2
from services.gateway.media_store import MediaStore

log = logging.getLogger(__name__)


async def sweep_once(search: clients.Search, stores: list[MediaStore], orphan_seconds: float) -> int:
    removed = 0
    for store in stores:
        for path in await asyncio.to_thread(store.older_than, orphan_seconds):
            if path.name.startswith("."):  # a partial write whose writer is gone
                await asyncio.to_thread(path.unlink, missing_ok=True)
                removed += 1
                continue
            others = await search.scroll(limit=1, filter=common_pb2.Filter(content_sha256=path.name))
            if not others.videos:
                await asyncio.to_thread(store.remove, path.name)
                removed += 1
    return removed


async def sweep_forever(search: clients.Search, stores: list[MediaStore], every_seconds: float,
                        orphan_seconds: float) -> None:
    while True:
        await asyncio.sleep(every_seconds)
        try:
            removed = await sweep_once(search, stores, orphan_seconds)
        except errors.ReelvecError as exc:  # the search service is away (channels.Upstream): next time
            log.warning("media sweep skipped", extra={"error": str(exc)})
            continue
        if removed:
            log.info("media sweep", extra={"removed": removed})
