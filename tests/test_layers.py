"""The import contract of docs/architecture.md (Layers): every import points down.

    tools    reelvec/tools/ (CLI, launcher, client, training, evaluation, deploy, soak), bench/
    services services/<name>/, each its own: none imports another
    core     reelvec/ outside tools/: config, server bootstrap, channels, errors, media, models, and
             the model logic services and tools share
    stubs    reelvec/v1/, generated from protos/

Every import in the source is read, those inside functions too. A tool talks to a service over gRPC,
never by importing it; bench measures a service's parts (its store, its models) and may import those,
but not a servicer (server.py, __main__.py).
"""

import ast
from pathlib import Path

import pytest
from checkout import ROOT

OURS = ("reelvec", "services", "bench")


def layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "bench":
        return "bench"
    if parts[0] == "services":
        return f"service {parts[1]}" if len(parts) > 1 else "services"
    if parts[:2] == ["reelvec", "v1"]:
        return "stubs"
    if parts[:2] == ["reelvec", "tools"]:
        return "tools"
    return "core"


def allowed(source: str, target: str) -> bool:
    below = {"stubs": {"stubs"}, "core": {"core", "stubs"}, "tools": {"tools", "core", "stubs"},
             "bench": {"bench", "tools", "core", "stubs"}}
    if source.startswith("service "):
        return target in {source, "core", "stubs"}
    if source == "bench" and target.startswith("service "):
        return True  # checked for servicers by the caller
    return target in below[source]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from reelvec import client` imports the module reelvec.client
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] in OURS and _exists(name)}


def _exists(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def sources() -> list[Path]:
    return [p for package in OURS for p in sorted((ROOT / package).rglob("*.py"))
            if "v1" not in p.relative_to(ROOT).parts[:2]]


def violations() -> list[str]:
    wrong = []
    for path in sources():
        source = module_name(path)
        for target in sorted(imports(path)):
            servicer = target.split(".")[-1] in ("server", "__main__") and target.startswith("services.")
            if not allowed(layer(source), layer(target)) or (layer(source) == "bench" and servicer):
                wrong.append(f"{source} ({layer(source)}) imports {target} ({layer(target)})")
    return wrong


def test_every_import_points_down():
    assert violations() == []


@pytest.mark.parametrize("source, target, ok", [
    ("services.gateway.server", "reelvec.errors", True),
    ("services.gateway.server", "services.search.records", False),
    ("reelvec.media", "services.encoder.frames", False),
    ("reelvec.media", "reelvec.tools.cli", False),
    ("reelvec.tools.cli", "services.gateway.auth", False),
    ("reelvec.tools.cli", "reelvec.v1.gateway_pb2", True),
    ("bench.search", "services.search.stores.base", True),
    ("reelvec.v1.gateway_pb2", "reelvec.errors", False),
])
def test_the_rules(source, target, ok):
    assert allowed(layer(source), layer(target)) == ok
