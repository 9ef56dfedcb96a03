import asyncio

from reelvec import config, logs, server
from reelvec.v1 import transcriber_pb2, transcriber_pb2_grpc
from services.transcriber.server import Settings, Transcriber


async def main() -> None:
    settings = config.load(Settings, description="reelvec transcriber service")
    log = logs.setup("transcriber", settings.log_level)
    servicer = Transcriber(settings)


    async def warmup():
        await servicer.load()
        versions = {"whisper": servicer.speech.name, "text": servicer.embedder.name}
        log.info("models loaded", extra=versions)

    await server.serve(settings, server.register(transcriber_pb2, transcriber_pb2_grpc, "Transcriber", servicer), warmup=warmup)


if __name__ == "__main__":
    asyncio.run(main())
