"""A bulk ingest against the real stack resumes: the gateway's content hash is the file's sha256."""

import json

import pytest

from reelvec import samples
from reelvec.v1 import gateway_pb2

pytestmark = pytest.mark.integration


def test_a_rerun_of_a_manifest_skips_what_is_stored_and_force_indexes_again(stack, tmp_path):
    ids = ["resume_a", "resume_b"]
    for n, video_id in enumerate(ids):
        samples.make_video(tmp_path / f"{video_id}.mp4", seed=90 + n, seconds=2, audio=False)
    manifest = tmp_path / "videos.jsonl"
    manifest.write_text(
        json.dumps({"path": "resume_a.mp4", "created_at": "2026-08-17T14:00:00+02:00"}) + "\n"
        + json.dumps({"path": "resume_b.mp4", "created_at": "not a time"}) + "\n"
    )
    try:
        first = stack.cli("index", "--manifest", str(manifest), "--json", check=False)
        assert first.returncode == 1 and f"{manifest}:2: field 'created_at': " in first.stderr
        assert [json.loads(line)["id"] for line in first.stdout.splitlines()] == ["resume_a"]
        record = stack.stub().Get(gateway_pb2.GetVideoRequest(id="resume_a"), timeout=30)
        assert record.metadata.created_at == 1_786_968_000  # 2026-08-17T12:00:00Z

        manifest.write_text(manifest.read_text().replace("not a time", "1786968000"))
        second = stack.cli("index", "--manifest", str(manifest), "--json")
        by_id = {line["id"]: line for line in map(json.loads, second.stdout.splitlines())}
        assert by_id["resume_a"]["skipped"] and by_id["resume_b"]["created"]

        forced = stack.cli("index", "--manifest", str(manifest), "--force", "--json")
        assert sorted((line["id"], line["created"]) for line in map(json.loads, forced.stdout.splitlines())) == [
            ("resume_a", False), ("resume_b", False)]
    finally:
        for video_id in ids:  # the shared stack's other tests count and search its videos
            stack.stub().Delete(gateway_pb2.DeleteVideoRequest(id=video_id), timeout=30)
