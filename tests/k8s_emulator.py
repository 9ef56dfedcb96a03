"""A Kubernetes API emulator on loopback, for `reelvec deploy`'s tests: no real API server can run on
these machines (no container runtime, no etcd). It speaks just the HTTP that reelvec deploy uses,
the way the API server does: server-side apply (PATCH application/apply-patch+yaml with
fieldManager and force), GET of objects and lists, the scale subresource (merge patch), and the
service proxy to Triton's repository index. Deployments and StatefulSets report themselves rolled
out only on the third read after a change, so that waiting is exercised."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

READS_UNTIL_READY = 3
_OBJECT = re.compile(r"^/(?:api/v1|apis/(?P<group>[^/]+/[^/]+))(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>scale))?$")


class Emulator:
    def __init__(self, triton_index: list[dict] | None = None, reads_until_ready: int = READS_UNTIL_READY):
        self.reads_until_ready = reads_until_ready
        self.objects: dict[str, dict] = {}  # path -> object
        self.requests: list[dict] = []  # method, path, query, content type
        self.triton_index = triton_index or []
        self._reads: dict[str, int] = {}
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status: int, body) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self):
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"{}")

            def _record(self) -> tuple[str, dict]:
                url = urlparse(self.path)
                query = parse_qs(url.query)
                with emulator._lock:
                    emulator.requests.append({"method": self.command, "path": url.path, "query": query,
                                              "content_type": self.headers.get("Content-Type", ""),
                                              "authorization": self.headers.get("Authorization", "")})
                return url.path, query

            def do_PATCH(self):
                path, query = self._record()
                body, kind = self._body(), self.headers.get("Content-Type", "")
                status, reply = emulator.patch(path, query, body, kind)
                self._reply(status, reply)

            def do_GET(self):
                path, _ = self._record()
                status, reply = emulator.get(path)
                self._reply(status, reply)

            def do_POST(self):
                path, _ = self._record()
                if path.endswith("/services/triton:8000/proxy/v2/repository/index"):
                    return self._reply(200, emulator.triton_index)
                self._reply(404, {"kind": "Status", "code": 404, "reason": "NotFound"})

        return Handler

    def patch(self, path, query, body, content_type):
        match = _OBJECT.match(path)
        if match is None:
            return 404, {"kind": "Status", "code": 404}
        with self._lock:
            if match["sub"] == "scale":
                target = path.removesuffix("/scale")
                if target not in self.objects:
                    return 404, {"kind": "Status", "code": 404}
                self._change(target, {"spec": {"replicas": body["spec"]["replicas"]}})
                replicas = self.objects[target]["spec"]["replicas"]
                return 200, {"kind": "Scale", "spec": {"replicas": replicas}}
            if content_type.startswith("application/apply-patch"):
                if query.get("fieldManager") != ["reelvec"] or query.get("force") != ["true"]:
                    return 422, {"kind": "Status", "code": 422, "reason": "fieldManager and force are required"}
                if body["metadata"]["name"] != match["name"]:
                    return 400, {"kind": "Status", "code": 400, "reason": "name does not match the path"}
                previous = self.objects.get(path)
                generation = (previous or {}).get("metadata", {}).get("generation", 0)
                changed = previous is None or previous.get("spec") != body.get("spec")
                stored = {**body, "metadata": {**body["metadata"], "generation": generation + (1 if changed else 0)}}
                self.objects[path] = stored
                self._reads[path] = 0 if changed else self._reads.get(path, self.reads_until_ready)
                return (201 if previous is None else 200), stored
            if content_type == "application/merge-patch+json" and path in self.objects:
                self._change(path, body)
                return 200, self.objects[path]
        return 415, {"kind": "Status", "code": 415}

    def _change(self, path, patch):
        stored = self.objects[path]
        for key, value in patch.get("spec", {}).items():
            stored["spec"][key] = value
        stored["metadata"]["generation"] += 1
        self._reads[path] = 0

    def get(self, path):
        with self._lock:
            if path in self.objects:
                return 200, self._with_status(path)
            items = [self._with_status(p) for p in self.objects if p.rsplit("/", 1)[0] == path]
            if _OBJECT.match(path) and _OBJECT.match(path)["name"] is None:
                return 200, {"kind": "List", "items": items}
        return 404, {"kind": "Status", "code": 404, "reason": "NotFound"}

    def _with_status(self, path):
        stored = json.loads(json.dumps(self.objects[path]))
        kind = stored["kind"]
        if kind in ("Deployment", "StatefulSet"):
            self._reads[path] = self._reads.get(path, 0) + 1
            replicas = stored["spec"].get("replicas", 1)
            if self._reads[path] >= self.reads_until_ready:
                stored["status"] = {"observedGeneration": stored["metadata"]["generation"], "replicas": replicas,
                                    "updatedReplicas": replicas, "readyReplicas": replicas}
            else:
                stored["status"] = {"observedGeneration": stored["metadata"]["generation"] - 1, "replicas": replicas,
                                    "updatedReplicas": 0, "readyReplicas": 0}
        if kind == "HorizontalPodAutoscaler":
            stored["status"] = {"currentReplicas": stored["spec"]["minReplicas"],
                                "desiredReplicas": stored["spec"]["minReplicas"]}
        return stored
