"""The API keys file: `<data-dir>/api-keys.json`, written by `reelvec keys` and read by the gateway
(services/gateway/auth.py, docs/reliability.md).

A key reads `rvk_<id>_<secret>`: the id finds its record, and the SHA-256 of the whole key must
match the stored digest. The secret is 32 random bytes, so a fast hash is enough: slow password
hashes are for guessable secrets. The file holds ids, digests, scopes and limits, never a key;
`create` returns a key once.
"""

import dataclasses
import hashlib
import json
import os
import secrets
import threading
import time
from pathlib import Path

PREFIX = "rvk_"
SCOPES = ("read", "write", "admin")  # each includes the ones before it


@dataclasses.dataclass
class Key:
    id: str
    digest: str
    scope: str
    rate: float  # calls per second
    burst: int
    created: int
    tokens: float = dataclasses.field(default=0.0, repr=False)
    refilled: float = dataclasses.field(default=0.0, repr=False)

    @classmethod
    def from_entry(cls, entry: dict) -> "Key":
        return cls(**{k: entry[k] for k in ("id", "digest", "scope", "rate", "burst", "created")})

    def public(self) -> dict:
        return {"id": self.id, "scope": self.scope, "rate": self.rate, "burst": self.burst, "created": self.created}

    def take(self, now: float) -> float:
        """0 when a call may go now; else the seconds until it may."""
        self.tokens = min(self.burst, self.tokens + (now - self.refilled) * self.rate)
        self.refilled = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyFile:
    """Create, list and revoke; each write replaces the file atomically."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def save(self, keys: list[Key]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # digests only, still private
        with os.fdopen(fd, "w") as out:
            json.dump({"keys": [{**k.public(), "digest": k.digest} for k in keys]}, out, indent=2)
        os.replace(partial, self.path)

    def read_all(self) -> list[Key]:
        if not self.path.exists():
            return []
        return [Key.from_entry(e) for e in json.loads(self.path.read_text()).get("keys", [])]

    def create(self, scope: str, rate: float = 50.0, burst: int = 100) -> tuple[str, Key]:
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        key_id = secrets.token_hex(4)
        key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        record = Key(key_id, digest(key), scope, float(rate), int(burst), int(time.time()))
        with self._lock:
            self.save([*self.read_all(), record])
        return key, record

    def revoke(self, key_id: str) -> bool:
        with self._lock:
            keys = self.read_all()
            kept = [k for k in keys if k.id != key_id]
            self.save(kept)
        return len(kept) < len(keys)

    def list(self) -> list[dict]:
        return [k.public() for k in self.read_all()]
