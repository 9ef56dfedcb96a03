"""The cluster side of `reelvec deploy`, through the kubernetes Python client's ApiClient:

- apply: server-side apply (PATCH, application/apply-patch+yaml, field manager "reelvec", forced),
  in dependency order, then waits until every Deployment and StatefulSet has rolled out (observed
  generation current, every replica updated and ready);
- status: workloads and their readiness, the HPAs' current and desired replicas, and the model
  versions Triton serves (its HTTP API through the API server's service proxy);
- scale: a Deployment's replicas through the scale subresource; when an HPA drives it, its
  minReplicas too, so the autoscaler does not undo the change at once.

Paths are built from a table of the kinds reelvec deploys, so no discovery round trips are needed.
"""

import json
import time

from kubernetes import client, config

FIELD_MANAGER = "reelvec"
NAMESPACE = "reelvec"
SCALABLE = ("encoder", "triton", "gateway", "transcriber")
# apiVersion, kind -> plural; the order is the order of apply (what others need comes first)
KINDS = {
    ("v1", "Namespace"): "namespaces",
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "PersistentVolumeClaim"): "persistentvolumeclaims",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networkpolicies",
    ("v1", "Service"): "services",
    ("apps/v1", "StatefulSet"): "statefulsets",
    ("batch/v1", "Job"): "jobs",
    ("apps/v1", "Deployment"): "deployments",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
}
ROLLED_OUT = ("Deployment", "StatefulSet")
# The entry point rolls out last, once what it calls has: a new gateway may send requests that an
# old search service does not understand yet (Analyze by id came in that way).
CALLERS = ("gateway",)
_CALLER_KINDS = ("Deployment", "PodDisruptionBudget", "HorizontalPodAutoscaler")


def waves(docs: list[dict]) -> tuple[list[dict], list[dict]]:
    """Everything but the callers' workloads, then those: apply and roll out in that order."""
    last = [d for d in docs if d["metadata"]["name"] in CALLERS and d["kind"] in _CALLER_KINDS]
    return [d for d in docs if d not in last], last


def _base(api_version: str) -> str:
    return "/api/v1" if api_version == "v1" else f"/apis/{api_version}"


def path_of(doc: dict) -> str:
    key = (doc["apiVersion"], doc["kind"])
    if key not in KINDS:
        raise ValueError(f"reelvec deploy does not know {doc['kind']} ({doc['apiVersion']})")
    name = doc["metadata"]["name"]
    if doc["kind"] == "Namespace":
        return f"/api/v1/namespaces/{name}"
    namespace = doc["metadata"].get("namespace", NAMESPACE)
    return f"{_base(doc['apiVersion'])}/namespaces/{namespace}/{KINDS[key]}/{name}"


class Cluster:
    def __init__(self, api: client.ApiClient, request_timeout: float = 30.0):
        self.api = api
        self.request_timeout = request_timeout

    @classmethod
    def connect(cls, kubeconfig: str | None = None, context: str | None = None) -> "Cluster":
        """The kubeconfig (or $KUBECONFIG, ~/.kube/config); inside a pod, its service account."""
        try:
            config.load_kube_config(config_file=kubeconfig, context=context)
        except (config.ConfigException, FileNotFoundError) as outside:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                raise ValueError(f"no usable kubeconfig ({outside}; give --kubeconfig or set KUBECONFIG) "
                                 "and not running in a pod") from None
        return cls(client.ApiClient())

    def _call(self, method: str, path: str, body=None, content_type: str = "application/json", query=()):
        """One request through the client's own serialization, auth and TLS; a non-2xx status
        raises kubernetes.client.ApiException."""
        request = self.api.param_serialize(
            method, path, query_params=list(query), body=body,
            header_params={"Accept": "application/json", "Content-Type": content_type},
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*request, _request_timeout=self.request_timeout)
        response.read()
        if not 200 <= response.status <= 299:
            raise client.ApiException(http_resp=response)
        return json.loads(response.data or b"{}")

    def apply(self, docs: list[dict]) -> list[str]:
        order = list(KINDS)
        applied = []
        for doc in sorted(docs, key=lambda d: order.index((d["apiVersion"], d["kind"]))):
            # JSON is YAML: the apply-patch+yaml body goes as text
            self._call("PATCH", path_of(doc), json.dumps(doc), "application/apply-patch+yaml",
                       [("fieldManager", FIELD_MANAGER), ("force", "true")])
            applied.append(f"{doc['kind']}/{doc['metadata']['name']}")
        return applied

    def wait_for_rollouts(self, docs: list[dict], timeout: float = 900.0, poll: float = 2.0) -> None:
        waiting = {path_of(d): d["metadata"]["name"] for d in docs if d["kind"] in ROLLED_OUT}
        deadline = time.monotonic() + timeout
        while waiting:
            for path in list(waiting):
                if _rolled_out(self._call("GET", path)):
                    del waiting[path]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"not rolled out after {timeout:g}s: {', '.join(sorted(waiting.values()))}")
            time.sleep(poll)

    def status(self, namespace: str = NAMESPACE) -> dict:
        workloads = {}
        for kind, plural in (("Deployment", "deployments"), ("StatefulSet", "statefulsets")):
            for item in self._call("GET", f"/apis/apps/v1/namespaces/{namespace}/{plural}").get("items", []):
                spec, status = item["spec"], item.get("status", {})
                workloads[item["metadata"]["name"]] = {
                    "kind": kind, "replicas": spec.get("replicas", 1), "ready": status.get("readyReplicas", 0),
                    "updated": status.get("updatedReplicas", 0), "rolled_out": _rolled_out(item),
                }
        scalers = {}
        hpa_path = f"/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers"
        for item in self._call("GET", hpa_path).get("items", []):
            status = item.get("status", {})
            scalers[item["metadata"]["name"]] = {
                "min": item["spec"].get("minReplicas", 1), "max": item["spec"]["maxReplicas"],
                "current": status.get("currentReplicas", 0), "desired": status.get("desiredReplicas", 0),
            }
        return {"workloads": workloads, "autoscalers": scalers, "triton_models": self._triton_models(namespace)}

    def _triton_models(self, namespace: str) -> dict:
        """name -> served versions, or the reason they could not be read (Triton down, no proxy)."""
        proxy = f"/api/v1/namespaces/{namespace}/services/triton:8000/proxy"
        try:
            index = self._call("POST", f"{proxy}/v2/repository/index", body={"ready": True})
        except client.ApiException as exc:
            return {"error": f"Triton's repository index through the API server proxy: {exc.status} {exc.reason}"}
        versions: dict[str, list[str]] = {}
        for entry in index if isinstance(index, list) else []:
            versions.setdefault(entry["name"], []).append(entry.get("version", ""))
        return {name: sorted(found, key=lambda v: int(v) if v.isdigit() else -1) for name, found in versions.items()}

    def scale(self, name: str, replicas: int, namespace: str = NAMESPACE) -> dict:
        if name not in SCALABLE:
            raise ValueError(f"scale one of {', '.join(SCALABLE)}, not {name!r}")
        if replicas < 1:
            raise ValueError("replicas must be at least 1")
        hpa = f"/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers/{name}"
        try:
            current = self._call("GET", hpa)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            current = None
        if current is not None:
            maximum = max(current["spec"]["maxReplicas"], replicas)
            self._call("PATCH", hpa, {"spec": {"minReplicas": replicas, "maxReplicas": maximum}},
                       "application/merge-patch+json")
        scale = f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"
        result = self._call("PATCH", scale, {"spec": {"replicas": replicas}}, "application/merge-patch+json")
        return {"name": name, "replicas": result["spec"]["replicas"], "autoscaler_min": replicas if current else None}


def _rolled_out(item: dict) -> bool:
    spec, status = item.get("spec", {}), item.get("status", {})
    wanted = spec.get("replicas", 1)
    return (
        status.get("observedGeneration", 0) >= item["metadata"].get("generation", 1)
        and status.get("updatedReplicas", 0) == wanted
        and status.get("readyReplicas", 0) == wanted
    )
