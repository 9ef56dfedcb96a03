import asyncio

from reelvec import config, logs
from services.search.originality import METHODS
from services.search.server import CATALOGS, SearchSettings, run


def main(argv=None) -> None:
    settings = config.load(SearchSettings, argv, description="reelvec search service")
    if settings.store not in CATALOGS:
        raise SystemExit(f"--store must be one of {', '.join(CATALOGS)}, not {settings.store!r}")
    if settings.originality not in METHODS:
        raise SystemExit(f"--originality must be one of {', '.join(METHODS)}, not {settings.originality!r}")
    logs.setup("search", settings.log_level)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
