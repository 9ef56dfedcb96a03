"""The Dockerfiles, read without a Docker daemon (none runs here): every image is multi-stage where
it builds anything, ends as a non-root user on a slim base, serves without PyTorch, copies only
paths that exist, and starts what the manifests expect. Each service's requirements.txt is checked
against what the service really imports, run in a fresh interpreter."""

import ast
import importlib.metadata
import json
import re
import subprocess
import sys

import pytest
from checkout import ROOT

from reelvec.tools.deploy.render import kustomize

SERVICES = ("gateway", "encoder", "transcriber", "search", "regressor")
SERVING = {f"services/{s}/Dockerfile": f"reelvec/{s}" for s in SERVICES} | {
    "deploy/triton/Dockerfile": "reelvec/triton",
    "deploy/models/Dockerfile": "reelvec/models",
}
# what a service loads only when it is used, beside its import-time modules
LAZY = {
    "search": ["qdrant_edge", "qdrant_client", "sklearn.ensemble"],
    "regressor": ["lightgbm", "onnxruntime"],
}


def instructions(path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / path).read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def stages(path) -> list[list[tuple[str, str]]]:
    found = []
    for keyword, rest in instructions(path):
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, rest))
    return found


TOOLS = {"services/loadgen/Dockerfile": "reelvec/loadgen"}  # the in-cluster load test (deploy/k8s/loadtest)


@pytest.mark.parametrize("path", [*SERVING, *TOOLS, "deploy/triton/Dockerfile.gpu"])
def test_images_end_non_root_and_copy_what_exists(path):
    built = stages(path)
    final = built[-1]
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users and users[-1].isdigit() and int(users[-1]) > 0, path
    for stage in built:
        for keyword, rest in stage:
            if keyword == "COPY" and "--from=" not in rest:
                *sources, _ = rest.split()
                for source in sources:
                    assert (ROOT / source).exists(), (path, source)


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_image_carries_the_core_and_its_own_service_only(service):
    build = stages(f"services/{service}/Dockerfile")[0]
    copied = [rest.split()[0] for keyword, rest in build if keyword == "COPY"]
    assert "services" not in copied and f"services/{service}" in copied
    assert {s.split("/")[1] for s in copied if s.startswith("services/") and s != "services/__init__.py"} == {service}
    assert ("RUN", "rm -rf reelvec/tools") in build  # the CLI, training and evaluation stay out


@pytest.mark.parametrize("path", SERVING)
def test_serving_images_are_multi_stage_slim_and_free_of_pytorch(path):
    built = stages(path)
    assert len(built) >= 2, path  # build tools stay in the build stage
    final = built[-1]
    assert final[0][1] == "python:3.11-slim", path
    final_runs = " ".join(rest for keyword, rest in final if keyword == "RUN")
    assert "torch" not in final_runs and "pip install" not in final_runs, path
    for requirements in (ROOT / "services").glob("*/requirements.txt"):
        assert "torch" not in requirements.read_text(), requirements


def test_images_start_what_the_manifests_run():
    rendered = kustomize(ROOT / "deploy" / "k8s" / "base")
    images = {c["image"].split(":")[0] for doc in rendered if doc["kind"] in
              ("Deployment", "StatefulSet", "Job") for c in doc["spec"]["template"]["spec"]["containers"]}
    ours = {i for i in images if i.startswith("reelvec/")}
    assert ours == set(SERVING.values())
    for service in SERVICES:
        entry = [rest for keyword, rest in stages(f"services/{service}/Dockerfile")[-1] if keyword == "ENTRYPOINT"]
        assert json.loads(entry[-1]) == ["python", "-m", f"services.{service}"]


def _requirement_closure(service: str) -> set[str]:
    """The distributions requirements.txt names (following -r) and everything they depend on."""
    def names(path):
        for line in path.read_text().splitlines():
            line = line.split("#")[0].strip()
            if line.startswith("-r"):
                yield from names((path.parent / line[2:].strip()).resolve())
            elif line:
                yield re.split(r"[\[<>=!~ ]", line, maxsplit=1)[0]

    todo = [n.lower().replace("_", "-") for n in names(ROOT / "services" / service / "requirements.txt")]
    seen = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for requirement in requires:
            if "extra ==" in requirement and name != "tritonclient":
                continue
            todo.append(re.split(r"[\[<>=!~ ;(]", requirement, maxsplit=1)[0].lower().replace("_", "-"))
    return seen


def _module_level_imports(node) -> set[str]:
    found = set()
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import):
            found.update(alias.name for alias in child.names)
        elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
            found.add(child.module)
        elif not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            found |= _module_level_imports(child)
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_requirements_cover_what_the_service_imports(service):
    """Every module-level third-party import in our modules that the service loads, and LAZY, must
    come from a distribution the requirements pull in. Imports inside functions are export or
    training paths (torch) unless LAZY names them; the libraries' own optional imports are theirs."""
    probe = (
        "import importlib, json, sys\n"
        f"for name in {[f'services.{service}.server', f'services.{service}.__main__']!r}:\n"
        "    importlib.import_module(name)\n"
        "ours = [m.__file__ for n, m in list(sys.modules.items())\n"
        "        if n.split('.')[0] in ('reelvec', 'services') and getattr(m, '__file__', None)]\n"
        "print(json.dumps(ours))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    modules = set(LAZY.get(service, []))
    for source in json.loads(result.stdout):
        modules.update(_module_level_imports(ast.parse(open(source).read())))
    by_module = importlib.metadata.packages_distributions()
    imported = {d.lower().replace("_", "-") for m in modules for d in by_module.get(m.split(".")[0], [])}
    imported -= {"reelvec", "grpcio-tools"}  # ours; the stubs are generated in the build stage
    missing = imported - _requirement_closure(service)
    assert not missing, f"services/{service}/requirements.txt misses {sorted(missing)}"
