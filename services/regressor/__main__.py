import asyncio

from reelvec import config, logs, server
from reelvec.v1 import regressor_pb2, regressor_pb2_grpc
from services.regressor.server import Regressor, Settings


async def main() -> None:
    settings = config.load(Settings, description="reelvec regressor service")
    logs.setup("regressor", settings.log_level)
    servicer = Regressor(settings)


    async def warmup():
        await asyncio.to_thread(servicer.load)

    await server.serve(settings, server.register(regressor_pb2, regressor_pb2_grpc, "Regressor", servicer), warmup=warmup)


if __name__ == "__main__":
    asyncio.run(main())
