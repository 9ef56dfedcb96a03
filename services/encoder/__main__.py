import asyncio

from reelvec import config, logs, server
from reelvec.v1 import encoder_pb2, encoder_pb2_grpc
from services.encoder.server import Encoder, Settings


async def main() -> None:
    settings = config.load(Settings, description="reelvec encoder service")
    logs.setup("encoder", settings.log_level)
    servicer = Encoder(settings)
    await server.serve(
        settings,
        server.register(encoder_pb2, encoder_pb2_grpc, "Encoder", servicer),
        warmup=servicer.warmup,
        cleanup=servicer.close,
    )


if __name__ == "__main__":
    asyncio.run(main())
