"""The bundled sample that `reelvec up --sample` (and so `make run`) indexes into an empty store."""

from pathlib import Path

import grpc

from reelvec import samples
from reelvec.tools import client
from reelvec.v1 import gateway_pb2

MARKER_ID = "bigbuckbunny"


def ensure_indexed(gateway: str, data_dir: Path) -> None:
    stub = client.connect(gateway)
    try:
        stub.Get(gateway_pb2.GetVideoRequest(id=MARKER_ID), timeout=10)
        print("sample corpus already indexed", flush=True)
        return
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
    manifest = samples.build_sample_corpus(data_dir / "sample")
    items = client.read_manifest(manifest)
    for path, metadata in items:
        response = client.index_file(stub, path, metadata)
        print(f"indexed sample {response.id}", flush=True)
    report = client.train_regressor(stub)
    views = f"; views: {report.views.model}, R^2 {report.views.r2:.2f}" if report.HasField("views") else ""
    print(f"regressor trained on the sample: {report.model}, R^2 {report.r2:.2f}, Spearman {report.spearman:.2f}"
          f"{views} (only {report.train_size} videos; index your own corpus and retrain)", flush=True)
