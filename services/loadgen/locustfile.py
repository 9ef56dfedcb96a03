"""Locust load test of the gateway over gRPC: Search, Predict and Index traffic in one bounded run.

    make loadtest                      # 16 users for 30 s against 127.0.0.1:50051 (a `make run` stack)
    make loadtest GATEWAY=h:p USERS=64 SECONDS=60 VIDEOS=dir-of-mp4

Each user mixes Search by id (6), by text (2) and by video (1), Predict by id (2) and, when
LOADGEN_VIDEOS names a folder of clips, Index of one of them under a fresh id (1). Every call has a
deadline, and every non-OK status counts as a failure: Locust then exits 1. Locust prints requests/s,
p50/p95/p99 and failures per RPC. Runs in its own venv (.venv-loadtest): Locust wants a newer pyzmq
than nvidia-pytriton allows. The same file runs in-cluster as a Job (deploy/k8s/loadtest).
"""

import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()  # grpc's C core must cooperate with Locust's gevent loop

import itertools  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import grpc  # noqa: E402
from locust import User, between, task  # noqa: E402

from reelvec import limits  # noqa: E402
from reelvec.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc  # noqa: E402

DEADLINE = float(os.environ.get("LOADGEN_DEADLINE", "30"))
# a gateway with keys wants one (services/gateway/auth.py); give it a rate the load test cannot reach
METADATA = (("authorization", f"Bearer {os.environ['REELVEC_API_KEY']}"),) if os.environ.get("REELVEC_API_KEY") else ()
WORDS = ["pasta", "travel", "bike", "music", "dog", "recipe", "city", "beach", "workout", "game"]
_counter = itertools.count()


def _videos() -> list[bytes]:
    folder = os.environ.get("LOADGEN_VIDEOS")
    return [p.read_bytes() for p in sorted(Path(folder).glob("*.mp4"))] if folder else []


class GatewayUser(User):
    host = "127.0.0.1:50051"
    wait_time = between(0.0, 0.05)
    videos = _videos()

    def on_start(self):
        self.channel = grpc.insecure_channel(self.host, options=limits.GRPC_OPTIONS)
        self.stub = gateway_pb2_grpc.GatewayStub(self.channel)
        found = self.stub.Search(gateway_pb2.SearchRequest(text="video", k=50), timeout=DEADLINE, metadata=METADATA)
        self.ids = [hit.id for hit in found.hits]
        if not self.ids:
            raise RuntimeError(f"the gateway at {self.host} has no videos: index some first")

        self.indexed: list[str] = []

    def on_stop(self):
        for video_id in self.indexed:  # a load test leaves the corpus as it found it
            self.stub.Delete(gateway_pb2.DeleteVideoRequest(id=video_id), timeout=DEADLINE, metadata=METADATA)
        self.channel.close()

    def _call(self, name: str, method, request) -> bool:
        started = time.perf_counter()
        error, size = None, 0
        try:
            size = method(request, timeout=DEADLINE, metadata=METADATA).ByteSize()
        except grpc.RpcError as exc:
            error = RuntimeError(f"{exc.code().name}: {exc.details()}")
        self.environment.events.request.fire(
            request_type="grpc", name=name, response_time=(time.perf_counter() - started) * 1000,
            response_length=size, exception=error, context={},
        )
        return error is None

    @task(6)
    def search_by_id(self):
        self._call("Search id", self.stub.Search, gateway_pb2.SearchRequest(id=random.choice(self.ids), k=10))

    @task(2)
    def search_by_text(self):
        text = " ".join(random.sample(WORDS, 2))
        self._call("Search text", self.stub.Search, gateway_pb2.SearchRequest(text=text, k=10))

    @task(1)
    def search_by_video(self):
        if self.videos:
            self._call("Search video", self.stub.Search, gateway_pb2.SearchRequest(video=random.choice(self.videos), k=10))

    @task(2)
    def predict_by_id(self):
        self._call("Predict id", self.stub.Predict, gateway_pb2.PredictRequest(id=random.choice(self.ids), k=5))

    @task(1)
    def index(self):
        if not self.videos:
            return
        metadata = common_pb2.VideoMetadata(
            id=f"loadgen-{uuid.uuid4().hex[:8]}-{next(_counter)}", caption="load test upload", likes=10,
            author=common_pb2.AuthorStats(id="loadgen", followers=100, videos=10),
        )
        request = gateway_pb2.IndexRequest(video=random.choice(self.videos), metadata=metadata)
        if self._call("Index", self.stub.Index, request):
            self.indexed.append(metadata.id)
