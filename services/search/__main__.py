import asyncio

from reelvec import config, logs
from reelvec.server import register, serve
from reelvec.v1 import search_pb2, search_pb2_grpc
from services.search.catalog import open_catalog
from services.search.server import SearchServicer
from services.search.settings import SearchSettings


async def main(argv=None) -> None:
    settings = config.load(SearchSettings, argv, description="reelvec search service")
    logs.setup("search", settings.log_level)
    servicer = SearchServicer(settings)

    async def warmup():
        servicer.attach(await asyncio.to_thread(open_catalog, settings))

    async def cleanup():
        opened = servicer.detach()
        if opened is not None:
            await asyncio.to_thread(opened.close)

    await serve(settings, register(search_pb2, search_pb2_grpc, "Search", servicer), warmup, cleanup)


if __name__ == "__main__":
    asyncio.run(main())
