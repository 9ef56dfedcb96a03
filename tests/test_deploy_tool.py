"""`reelvec deploy` against a Kubernetes API emulator on loopback (tests/k8s_emulator.py), because no
real API server can run on these machines. The emulator answers as the API server does for the
calls reelvec deploy makes, and checks server-side apply's parameters. A real cluster is still the
test that matters before a release (docs/deploy.md)."""

import json
import subprocess
import sys

import pytest
import yaml
from checkout import ROOT
from k8s_emulator import Emulator

from reelvec.tools.deploy import cluster, render

K8S = ROOT / "deploy" / "k8s"

TRITON_INDEX = [{"name": "efficientnet_lite0", "version": v, "state": "READY"} for v in ("2", "1")]


@pytest.fixture
def emulator():
    running = Emulator(TRITON_INDEX)
    yield running
    running.close()


def kubeconfig(emulator, tmp_path) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
        "clusters": [{"name": "emulator", "cluster": {"server": emulator.url}}],
        "users": [{"name": "tester", "user": {"token": "test-token"}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "tester"}}],
    }))
    return str(path)


def deploy(config: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reelvec.tools.cli", "deploy", *args, "--kubeconfig", config, "--json"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_render_points_every_reelvec_image_at_the_registry_and_tag():
    docs = render.render("gpu", tag="2026.11", registry="registry.example/ml", manifests=K8S)
    images = {c["image"] for d in docs if "template" in d.get("spec", {}) for c in d["spec"]["template"]["spec"]["containers"]}
    ours = {i for i in images if "reelvec/" in i}
    assert ours and all(i.startswith("registry.example/ml/reelvec/") and i.endswith(":2026.11") for i in ours)
    assert any(i.startswith("qdrant/qdrant:") for i in images)  # not ours: untouched
    assert all(cluster.path_of(d) for d in docs)  # every kind rendered is one apply knows
    with pytest.raises(ValueError, match="unknown overlay"):
        render.render("tpu", manifests=K8S)


def test_render_outside_a_checkout_says_where_the_manifests_are_wanted(tmp_path):
    with pytest.raises(ValueError, match="--manifests"):
        render.render("cpu", manifests=tmp_path)


@pytest.mark.integration
def test_apply_server_side_applies_everything_and_waits_for_the_rollouts(emulator, tmp_path):
    config = kubeconfig(emulator, tmp_path)
    result = deploy(config, "apply", "--overlay", "cpu", "--tag", "t1", "--timeout", "60")
    assert result.returncode == 0, result.stderr
    applied = json.loads(result.stdout)["applied"]
    rendered = render.render("cpu", tag="t1", manifests=K8S)
    assert len(applied) == len(rendered) == len(emulator.objects)
    patches = [r for r in emulator.requests if r["method"] == "PATCH"]
    assert patches[0]["path"] == "/api/v1/namespaces/reelvec"  # what the rest lives in comes first
    assert all(r["content_type"] == "application/apply-patch+yaml" for r in patches)
    assert all(r["authorization"] == "Bearer test-token" for r in emulator.requests)
    gateway = emulator.objects["/apis/apps/v1/namespaces/reelvec/deployments/gateway"]
    assert gateway["spec"]["template"]["spec"]["containers"][0]["image"] == "reelvec/gateway:t1"
    reads = [r for r in emulator.requests if r["method"] == "GET" and r["path"].endswith("/deployments/gateway")]
    assert len(reads) >= 3  # it waited until the rollout was done, not just for the PATCH
    # the gateway comes last, once every service it calls has rolled out
    calls = [(r["method"], r["path"]) for r in emulator.requests]
    gateway_patch = calls.index(("PATCH", "/apis/apps/v1/namespaces/reelvec/deployments/gateway"))
    search_reads = [i for i, call in enumerate(calls) if call == ("GET", "/apis/apps/v1/namespaces/reelvec/deployments/search")]
    assert search_reads and max(search_reads) < gateway_patch
    assert applied[-1] in ("Deployment/gateway", "PodDisruptionBudget/gateway", "HorizontalPodAutoscaler/gateway")

    status = json.loads(deploy(config, "status").stdout)
    assert set(status["workloads"]) >= {"gateway", "encoder", "transcriber", "search", "regressor", "triton", "qdrant"}
    assert all(w["rolled_out"] and w["ready"] == w["replicas"] for w in status["workloads"].values())
    assert status["autoscalers"]["gateway"] == {"min": 1, "max": 10, "current": 1, "desired": 1}
    assert status["triton_models"] == {"efficientnet_lite0": ["1", "2"]}

    scaled = json.loads(deploy(config, "scale", "encoder", "3").stdout)
    assert scaled == {"name": "encoder", "replicas": 3, "autoscaler_min": 3}
    assert emulator.objects["/apis/apps/v1/namespaces/reelvec/deployments/encoder"]["spec"]["replicas"] == 3
    hpa = emulator.objects["/apis/autoscaling/v2/namespaces/reelvec/horizontalpodautoscalers/encoder"]
    assert hpa["spec"]["minReplicas"] == 3  # the autoscaler keeps what was asked for
    refused = deploy(config, "scale", "qdrant", "2")
    assert refused.returncode == 1 and "scale one of" in refused.stderr


@pytest.mark.integration
def test_apply_gives_up_when_a_rollout_never_finishes(tmp_path):
    stuck = Emulator(TRITON_INDEX, reads_until_ready=10**6)
    try:
        result = deploy(kubeconfig(stuck, tmp_path), "apply", "--overlay", "cpu", "--timeout", "3")
    finally:
        stuck.close()
    assert result.returncode == 1 and "not rolled out after 3s" in result.stderr and "search" in result.stderr
    # the services never rolled out, so the gateway was never changed
    assert "/apis/apps/v1/namespaces/reelvec/deployments/gateway" not in stuck.objects


def test_an_unreachable_cluster_is_one_line_not_a_traceback(tmp_path):
    emulator = Emulator()
    config = kubeconfig(emulator, tmp_path)
    emulator.close()
    result = deploy(config, "status")
    assert result.returncode != 0 and "Traceback" not in result.stderr
