import asyncio

from reelvec import config, logs, server
from reelvec.v1 import gateway_pb2, gateway_pb2_grpc
from services.gateway.server import Gateway, Settings


async def main() -> None:
    settings = config.load(Settings, description="reelvec gateway (the public API)")
    logs.setup("gateway", settings.log_level)
    servicer = Gateway(settings)

    def add(grpc_server):
        gateway_pb2_grpc.add_GatewayServicer_to_server(servicer, grpc_server)
        return [gateway_pb2.DESCRIPTOR.services_by_name["Gateway"].full_name]

    await server.serve(settings, add)


if __name__ == "__main__":
    asyncio.run(main())
