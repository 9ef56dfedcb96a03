"""Files from pinned Debian packages, fetched with `apt-get download` (nothing installed) and read
here, so that no dpkg-deb is needed: the real posts', the held-out footage's and the whitening's
footage's source."""

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

RELEASE = "Debian 12 bookworm, main"


def download(package: str, folder: Path) -> bytes:
    """The .deb of `package` ("name=version"); RuntimeError says what to install or run when apt
    cannot get it."""
    if shutil.which("apt-get") is None:
        raise RuntimeError(f"apt-get is missing: {package} comes from {RELEASE}; run this on Debian or Ubuntu")
    # as root apt drops to the _apt user, which cannot write into a private temporary folder
    command = ["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", package]
    attempt = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    if attempt.returncode != 0 and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True)  # a fresh image has no package lists
        attempt = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    if attempt.returncode != 0:
        raise RuntimeError(f"`apt-get download {package}` failed ({attempt.stderr.strip().splitlines()[-1:]}): "
                           f"run `apt-get update` (as root) on a machine whose sources include {RELEASE}")
    (deb,) = folder.glob(f"{package.split('=')[0]}_*.deb")
    return deb.read_bytes()


def checked(data: bytes, sha256: str, what: str) -> bytes:
    """`data` when its sha256 is the pinned one: a package rebuilt under the same version fails
    loudly instead of changing the measurements."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise RuntimeError(f"{what} has sha256 {digest}, expected {sha256}")
    return data


def member(deb: bytes, prefix: str) -> bytes:
    """A member of a .deb's ar archive by name prefix (e.g. "data.tar")."""
    if not deb.startswith(b"!<arch>\n"):
        raise ValueError("not a Debian package (no ar header)")
    at = 8
    while at + 60 <= len(deb):
        header = deb[at : at + 60]
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58])
        if name.startswith(prefix):
            return deb[at + 60 : at + 60 + size]
        at += 60 + size + size % 2  # members are 2-byte aligned
    raise ValueError(f"no {prefix}* in the package")


def data_file(deb: bytes, path: str) -> bytes:
    """One installed file's bytes, `path` as the package installs it ("./usr/share/...")."""
    return data_files(deb, (path,))[0]


def data_files(deb: bytes, paths: tuple[str, ...]) -> list[bytes]:
    """Several installed files' bytes, in the order asked, the archive decompressed once."""
    with tarfile.open(fileobj=io.BytesIO(member(deb, "data.tar"))) as archive:
        return [archive.extractfile(path).read() for path in paths]
