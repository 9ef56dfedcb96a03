"""reelvec: shared code of the services (config, gRPC bootstrap, media, stubs, CLI)."""

__version__ = "0.1.0"
