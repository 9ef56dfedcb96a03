"""An overlay of deploy/k8s rendered by kubectl's built-in kustomize, with our images pointed at a
registry and tag: what `reelvec deploy render` prints and `apply` sends."""

import subprocess

import yaml

from reelvec.config import REPO_ROOT

K8S = REPO_ROOT / "deploy" / "k8s"
OVERLAYS = ("cpu", "gpu")
OURS = "reelvec/"  # image names in the manifests carry no registry


def render(overlay: str, tag: str = "latest", registry: str = "") -> list[dict]:
    if overlay not in OVERLAYS:
        raise ValueError(f"unknown overlay {overlay!r}: use {' or '.join(OVERLAYS)}")
    try:
        result = subprocess.run(["kubectl", "kustomize", str(K8S / "overlays" / overlay)],
                                capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise ValueError("kubectl is not on PATH: its built-in kustomize renders the overlays") from None
    if result.returncode != 0:
        raise ValueError(f"kustomize failed: {result.stderr.strip()}")
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
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
