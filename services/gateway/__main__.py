import asyncio
from pathlib import Path

from reelvec import config, logs, server
from reelvec.v1 import gateway_pb2, gateway_pb2_grpc
from services.gateway import completion, media_sweep
from services.gateway.auth import KeyStore
from services.gateway.server import Gateway, Settings


def key_store(settings: Settings) -> KeyStore:
    return KeyStore(Path(settings.api_keys_file or Path(settings.data_dir) / "api-keys.json"))


async def main() -> None:
    settings = config.load(Settings, description="reelvec gateway (the public API)")
    logs.setup("gateway", settings.log_level)
    keys = key_store(settings)
    if settings.require_api_keys and not keys.enabled:
        raise SystemExit(f"require_api_keys is set but there is no keys file at {keys.path}: "
                         "create keys with `reelvec keys create`")
    servicer = Gateway(settings)
    background: list[asyncio.Task] = []

    async def warmup():
        completing = completion.Completion(servicer.search, servicer.services.transcriber, servicer.versions,
                                           servicer.media, servicer.fusion)
        stores = [store for store in (servicer.media, servicer.thumbnails) if store is not None]
        background.append(asyncio.create_task(completing.forever(settings.complete_every_seconds)))
        background.append(asyncio.create_task(
            media_sweep.sweep_forever(servicer.search, stores, settings.media_sweep_seconds, settings.media_orphan_seconds)))

    async def cleanup():
        for task in background:
            task.cancel()

    await server.serve(
        settings, server.register(gateway_pb2, gateway_pb2_grpc, "Gateway", servicer),
        warmup=warmup, cleanup=cleanup, authorize=keys.check,
    )


if __name__ == "__main__":
    asyncio.run(main())
