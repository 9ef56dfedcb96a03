"""Settings from flags, then environment variables, then defaults.

A service declares a dataclass; each field `foo_bar` is read from `--foo-bar` or `REELVEC_FOO_BAR`.
A field with `metadata={"choices": (...)}` accepts only those values, from either source.
"""

import argparse
import dataclasses
import os
from pathlib import Path

ENV_PREFIX = "REELVEC_"


def _parse_bool(text: str) -> bool:
    return text.strip().lower() in {"1", "true", "yes", "on"}


@dataclasses.dataclass
class ServerSettings:
    host: str = "127.0.0.1"  # internal services bind to loopback unless told otherwise
    port: int = 0
    metrics_port: int = 0  # 0: no Prometheus endpoint
    grace_seconds: float = 10.0  # drain time for in-flight calls on SIGTERM
    log_level: str = "INFO"
    data_dir: str = str(Path.home() / ".local" / "share" / "reelvec")
    max_video_mb: int = 256
    # calls handled at once; past it RESOURCE_EXHAUSTED at once (a client retries with backoff)
    # instead of an unbounded queue that only grows latency and memory. 0: no cap.
    max_concurrent_rpcs: int = 512
    # a client's connection is closed (its calls finish first) this long after it opened, so that a
    # client balancing over a DNS name's addresses reads them again and reaches replicas added
    # since; 0: never
    max_connection_age_seconds: float = 0.0
    # TLS and mutual TLS (reelvec/tls.py): PEM files; all empty: plaintext on loopback
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    tls_ca: str = ""


def data_dir(explicit: str | None = None) -> Path:
    """The data dir a tool works on: its --data-dir, else $REELVEC_DATA_DIR, else the services' default."""
    return Path(explicit or os.environ.get(ENV_PREFIX + "DATA_DIR") or ServerSettings.data_dir)


def models_dir() -> Path:
    """Where `make models` (reelvec.models.prepare) puts the serving models and every service and tool
    finds them: $REELVEC_MODELS_DIR, else the user's cache (they are rebuilt from installed packages,
    never edited), read when asked so that the installed package needs no checkout beside it."""
    explicit = os.environ.get(ENV_PREFIX + "MODELS_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "reelvec" / "models"


def load(cls, argv=None, description: str = ""):
    """Builds `cls` from argv and the environment; flags win over the environment."""
    parser = argparse.ArgumentParser(description=description)
    for field in dataclasses.fields(cls):
        default = field.default
        env = os.environ.get(ENV_PREFIX + field.name.upper())
        kind = type(default)
        if env is not None:
            default = _parse_bool(env) if kind is bool else kind(env)
        flag = "--" + field.name.replace("_", "-")
        if kind is bool:
            parser.add_argument(flag, type=_parse_bool, default=default, metavar="BOOL")
        else:
            parser.add_argument(flag, type=kind, default=default, choices=field.metadata.get("choices"))
    args = parser.parse_args(argv)
    for field in dataclasses.fields(cls):  # argparse checks choices on flags only, not on defaults
        choices = field.metadata.get("choices")
        if choices and getattr(args, field.name) not in choices:
            parser.error(f"{ENV_PREFIX + field.name.upper()} must be one of {', '.join(choices)}, "
                         f"not {getattr(args, field.name)!r}")
    return cls(**vars(args))
