import asyncio

from reelvec import config, logs, server
from reelvec.v1 import transcriber_pb2, transcriber_pb2_grpc
from services.transcriber.server import Settings, Transcriber


async def main() -> None:
    settings = config.load(Settings, description="reelvec transcriber service")
    log = logs.setup("transcriber", settings.log_level)
    servicer = Transcriber(settings)

    def add(grpc_server):
        transcriber_pb2_grpc.add_TranscriberServicer_to_server(servicer, grpc_server)
        return [transcriber_pb2.DESCRIPTOR.services_by_name["Transcriber"].full_name]

    async def warmup():
        await asyncio.to_thread(servicer.load)
        versions = {"whisper": servicer.speech.version, "text": servicer.embedder.version}
        log.info("models loaded", extra=versions)

    await server.serve(settings, add, warmup=warmup)


if __name__ == "__main__":
    asyncio.run(main())
