import asyncio

from reelvec import config, logs, server
from reelvec.v1 import gateway_pb2, gateway_pb2_grpc
from services.gateway.server import Gateway, Settings


async def main() -> None:
    settings = config.load(Settings, description="reelvec gateway (the public API)")
    logs.setup("gateway", settings.log_level)
    servicer = Gateway(settings)


    await server.serve(settings, server.register(gateway_pb2, gateway_pb2_grpc, "Gateway", servicer))


if __name__ == "__main__":
    asyncio.run(main())
