"""API keys for the gateway (issue 6; docs/reliability.md): hashed at rest, scoped, rate-limited.

A key reads `rvk_<id>_<secret>`: the id finds its record, and the SHA-256 of the whole key must
match the stored digest (compared in constant time). The secret is 32 random bytes, so a fast
hash is enough: slow password hashes are for guessable secrets. The file
(`<data-dir>/api-keys.json`, or `api_keys_file`) holds ids, digests, scopes and limits, never a
key. `reelvec keys create` prints a key once. The gateway reads the file again when it changes.

Scopes nest: read (Search, Predict, Get, Embed, Transcribe, GetReembed, GetThumbnail, GetVideoFile) < write (Index,
IndexStream, Delete) < admin (TrainRegressor, Reembed). Each key has a token bucket: `rate` calls
per second and `burst` at once, past which calls get RESOURCE_EXHAUSTED, saying how long to wait.
Callers send `authorization: Bearer <key>` (or `x-api-key: <key>`).

Keys are off while no keys file exists: `reelvec up` binds loopback only. With `require_api_keys`
(deploy/k8s sets it), a missing file stops the gateway at start instead.
"""

import dataclasses
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from pathlib import Path

from reelvec import errors

PREFIX = "rvk_"
SCOPES = ("read", "write", "admin")  # each includes the ones before it
METHOD_SCOPES = {
    "Embed": "read", "Search": "read", "Predict": "read", "Get": "read", "Transcribe": "read",
    "GetReembed": "read", "GetThumbnail": "read", "GetVideoFile": "read", "Index": "write", "IndexStream": "write", "Delete": "write",
    "TrainRegressor": "admin", "Reembed": "admin",
}
RECHECK_SECONDS = 1.0  # how often the file's modification time is looked at


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


def _from_entry(entry: dict) -> Key:
    return Key(**{k: entry[k] for k in ("id", "digest", "scope", "rate", "burst", "created")})


class KeyStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._keys: dict[str, Key] = {}
        self._seen: float | None = None  # the file's mtime when read
        self._checked = 0.0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.path.exists()

    def check(self, method: str, metadata: dict) -> None:
        """The gateway's `authorize`: nothing to check while no keys file exists."""
        if self.enabled:
            self.authorize(method, metadata)

    def _load(self) -> None:
        now = time.monotonic()
        if now - self._checked < RECHECK_SECONDS and self._seen is not None:
            return
        self._checked = now
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._keys, self._seen = {}, None
            return
        if mtime == self._seen:
            return
        entries = json.loads(self.path.read_text()).get("keys", [])
        old = self._keys
        self._keys = {}
        for entry in entries:
            key = _from_entry(entry)
            kept = old.get(key.id)  # a reload keeps each bucket's state
            key.tokens, key.refilled = (kept.tokens, kept.refilled) if kept else (key.burst, now)
            self._keys[key.id] = key
        self._seen = mtime

    def _save(self, keys: list[Key]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # digests only, still private
        with os.fdopen(fd, "w") as out:
            json.dump({"keys": [{**k.public(), "digest": k.digest} for k in keys]}, out, indent=2)
        os.replace(partial, self.path)

    def _read_all(self) -> list[Key]:
        if not self.path.exists():
            return []
        return [_from_entry(e) for e in json.loads(self.path.read_text()).get("keys", [])]

    def create(self, scope: str, rate: float = 50.0, burst: int = 100) -> tuple[str, Key]:
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        key_id = secrets.token_hex(4)
        key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        record = Key(key_id, digest(key), scope, float(rate), int(burst), int(time.time()))
        with self._lock:
            self._save([*self._read_all(), record])
        return key, record

    def revoke(self, key_id: str) -> bool:
        with self._lock:
            keys = self._read_all()
            kept = [k for k in keys if k.id != key_id]
            self._save(kept)
        return len(kept) < len(keys)

    def list(self) -> list[dict]:
        return [k.public() for k in self._read_all()]

    def authorize(self, method: str, metadata: dict) -> None:
        """Raises Unauthenticated, PermissionDenied or ResourceExhausted; returns when
        the call may go on."""
        token = metadata.get("x-api-key") or metadata.get("authorization", "").removeprefix("Bearer ").strip()
        if not token:
            raise errors.Unauthenticated("an API key is required: send `authorization: Bearer <key>` "
                                         "(reelvec CLI: --api-key or REELVEC_API_KEY)")
        parts = token.removeprefix(PREFIX).split("_", 1)
        with self._lock:
            self._load()
            key = self._keys.get(parts[0]) if token.startswith(PREFIX) and len(parts) == 2 else None
            if key is None or not hmac.compare_digest(key.digest, digest(token)):
                raise errors.Unauthenticated("unknown or revoked API key")
            needed = METHOD_SCOPES.get(method, "admin")
            if SCOPES.index(key.scope) < SCOPES.index(needed):
                raise errors.PermissionDenied(f"{method} needs a {needed} key; key {key.id} is {key.scope}")
            wait = key.take(time.monotonic())
        if wait:
            raise errors.ResourceExhausted(f"key {key.id} is over its limit of {key.rate:g} calls/s "
                                           f"(burst {key.burst}): retry in {wait:.2f} s")
