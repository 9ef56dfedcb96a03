"""Between the capacity plan and deploy/k8s: what each pod requests, read from the rendered
manifests, and the kustomize overlay `reelvec deploy plan --out DIR` writes (replicas, autoscaler
bounds, Qdrant's pods, size and copies, the fused vector's quantization), which `reelvec deploy
render --overlay DIR` renders."""

import os
from pathlib import Path

import yaml

from reelvec.tools.deploy.capacity import AUTOSCALED, Plan, PodSize

_CPU = {"m": 1e-3, "": 1.0}
_BYTES_IN_GIB = {"Ki": 2**-20, "Mi": 2**-10, "Gi": 1.0, "Ti": 2**10,
                 "k": 1e3 / 2**30, "M": 1e6 / 2**30, "G": 1e9 / 2**30, "T": 1e12 / 2**30, "": 1 / 2**30}


def cpu_cores(quantity) -> float:
    text = str(quantity)
    unit = "m" if text.endswith("m") else ""
    return float(text[: len(text) - len(unit)]) * _CPU[unit]


def gibibytes(quantity) -> float:
    text = str(quantity)
    unit = next((u for u in sorted(_BYTES_IN_GIB, key=len, reverse=True) if u and text.endswith(u)), "")
    return float(text[: len(text) - len(unit)]) * _BYTES_IN_GIB[unit]


def base_for(gpu: bool, manifests: Path) -> Path:
    """What a plan builds on: the gpu overlay, or the base itself for a CPU cluster (the cpu overlay
    is one node: one replica of everything, volumes only one node can mount)."""
    return Path(manifests) / ("overlays/gpu" if gpu else "base")


def sizes_from(docs: list[dict]) -> dict[str, PodSize]:
    """Each workload's first container's requests (GPUs from its limits, where Kubernetes wants
    them), and a StatefulSet's volume size."""
    sizes = {}
    for doc in docs:
        if doc.get("kind") not in ("Deployment", "StatefulSet"):
            continue
        container = doc["spec"]["template"]["spec"]["containers"][0]
        resources = container.get("resources", {})
        requests, limits = resources.get("requests", {}), resources.get("limits", {})
        if "cpu" not in requests or "memory" not in requests:
            continue
        claims = doc["spec"].get("volumeClaimTemplates", [])
        disk = gibibytes(claims[0]["spec"]["resources"]["requests"]["storage"]) if claims else 0.0
        sizes[doc["metadata"]["name"]] = PodSize(cpu_cores(requests["cpu"]), gibibytes(requests["memory"]),
                                                 int(limits.get("nvidia.com/gpu", 0)), disk)
    return sizes


def _quantity_cpu(cores: float) -> str:
    return f"{cores:g}" if float(cores).is_integer() else f"{round(cores * 1000)}m"


def _quantity_memory(gib: float) -> str:
    return f"{gib:g}Gi" if float(gib).is_integer() else f"{round(gib * 1024)}Mi"


def _patch(kind: str, name: str, ops: list[tuple[str, object]], op: str = "replace") -> dict:
    body = yaml.safe_dump([{"op": op, "path": path, "value": value} for path, value in ops],
                          sort_keys=False)
    return {"target": {"kind": kind, "name": name}, "patch": _Literal(body)}


class _Literal(str):
    """A patch written as a block, as a person would write it, rather than one quoted line."""


yaml.SafeDumper.add_representer(_Literal, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style="|"))


def kustomization(plan: Plan, out: Path, manifests: Path, manifest_sizes: dict[str, PodSize]) -> dict:
    patches = []
    for name, service in plan.services.items():
        if name == "qdrant":
            continue
        patches.append(_patch("Deployment", name, [("/spec/replicas", service.pods)]))
        if name in AUTOSCALED:
            patches.append(_patch("HorizontalPodAutoscaler", name,
                                  [("/spec/minReplicas", service.pods), ("/spec/maxReplicas", service.max_pods)]))
    qdrant = plan.services["qdrant"]
    ops: list[tuple[str, object]] = [("/spec/replicas", qdrant.pods)]
    given = manifest_sizes["qdrant"]
    resources = "/spec/template/spec/containers/0/resources"
    # a database's memory is reserved whole (limit = request): past its request it would be the
    # first thing a node under pressure evicts
    if qdrant.size.cpu != given.cpu:
        ops += [(f"{resources}/requests/cpu", _quantity_cpu(qdrant.size.cpu)),
                (f"{resources}/limits/cpu", _quantity_cpu(qdrant.size.cpu))]
    if qdrant.size.memory_gib != given.memory_gib:
        ops += [(f"{resources}/requests/memory", _quantity_memory(qdrant.size.memory_gib)),
                (f"{resources}/limits/memory", _quantity_memory(qdrant.size.memory_gib))]
    if qdrant.size.disk_gib != given.disk_gib:
        ops.append(("/spec/volumeClaimTemplates/0/spec/resources/requests/storage",
                    _quantity_memory(qdrant.size.disk_gib)))
    patches.append(_patch("StatefulSet", "qdrant", ops))
    # The search service gets the quantization Qdrant was sized for: kept in memory, originals the
    # plan put on disk would not fit. "add", since the base sets no quantization (it replaces a key
    # that is there).
    # Shards past a million videos get the index that keeps their recall and latency (measured.LARGE_SHARD_INDEX).
    patches.append(_patch("ConfigMap", "reelvec-settings",
                          [("/data/REELVEC_QDRANT_REPLICATION_FACTOR", str(plan.qdrant.replication)),
                           ("/data/REELVEC_QUANTIZATION", plan.qdrant.quantization),
                           ("/data/REELVEC_QUANTIZATION_ORIGINALS", plan.qdrant.originals),
                           *((f"/data/{name}", str(value)) for name, value in plan.qdrant.index.items())], op="add"))
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        # kustomize wants a relative path to what it builds on
        "resources": [os.path.relpath(base_for(plan.load.gpu, manifests).resolve(), out.resolve())],
        "patches": patches,
    }


def write(plan: Plan, out: Path, manifests: Path, manifest_sizes: dict[str, PodSize], summary: str) -> Path:
    """`out`/kustomization.yaml, the plan's printout at its top as comments."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    header = "".join(f"# {line}".rstrip() + "\n" for line in summary.splitlines())
    body = yaml.safe_dump(kustomization(plan, out, manifests, manifest_sizes), sort_keys=False)
    path = out / "kustomization.yaml"
    path.write_text(f"# Written by `reelvec deploy plan` (docs/capacity.md). Render it with\n"
                    f"# `reelvec deploy render --overlay {out}`.\n#\n{header}{body}")
    return path
