import uvicorn

from reelvec import config, logs
from services.web.app import WebSettings, make_app


def main() -> None:
    settings = config.load(WebSettings, description="reelvec web page (talks to the gateway)")
    logs.setup("web", settings.log_level)
    uvicorn.run(make_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
                timeout_graceful_shutdown=int(settings.grace_seconds))


if __name__ == "__main__":
    main()
