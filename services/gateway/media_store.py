"""The uploaded videos, kept by content: `<data-dir>/media/<sha[:2]>/<sha256>`.

Kept so that a new model version can re-embed the corpus from the original files,
and so that the web page can show and play them. The same bytes uploaded under several
ids are stored once; a file goes when the last video that points at it is deleted.
"""

import os
import re
import time
from pathlib import Path

_SHA256 = re.compile(r"[0-9a-f]{64}")


class MediaStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def kept(self, sha256: str) -> Path | None:
        """The file of these bytes, when it is kept."""
        path = self.path(sha256) if sha256 else None
        return path if path is not None and path.exists() else None

    def put(self, sha256: str, data: bytes) -> Path:
        """Writes atomically (a reader never sees half a file); no-op when already there."""
        target = self.path(sha256)
        if target.exists():
            os.utime(target)  # fresh again: the orphan sweep leaves young files alone
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        partial.write_bytes(data)
        os.replace(partial, target)
        return target

    def older_than(self, seconds: float) -> list[Path]:
        """Uploads and leftover partial writes not touched for `seconds`."""
        now = time.time()
        return [p for p in self.root.glob("??/*") if now - p.stat().st_mtime > seconds]

    def remove(self, sha256: str) -> bool:
        try:
            self.path(sha256).unlink()
            return True
        except FileNotFoundError:
            return False
