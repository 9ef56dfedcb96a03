"""Manifest lines: every field checked, a bad line named by FILE:LINE and field, the good lines kept."""

import json
from datetime import datetime, timezone

import pytest

from reelvec.tools import client, manifest

AUG_17_NOON_UTC = int(datetime(2026, 8, 17, 12, tzinfo=timezone.utc).timestamp())


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"not decoded here")
    return tmp_path


def read(folder, *entries):
    """(good lines, error messages) of a manifest made of `entries` (a str is written verbatim)."""
    path = folder / "videos.jsonl"
    path.write_text("".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in entries))
    errors = []
    return manifest.read(path, errors.append), errors


@pytest.mark.parametrize("given, expected", [
    ("2026-08-17T12:00:00Z", AUG_17_NOON_UTC),
    ("2026-08-17T14:00:00+02:00", AUG_17_NOON_UTC),
    ("2026-08-17T07:30:00-04:30", AUG_17_NOON_UTC),
    ("2026-08-17T12:00:00.750Z", AUG_17_NOON_UTC),
    ("2026-08-17T12:00:00", AUG_17_NOON_UTC),  # no offset: UTC
    ("2026-08-17 12:00:00Z", AUG_17_NOON_UTC),
    (AUG_17_NOON_UTC, AUG_17_NOON_UTC),
    (float(AUG_17_NOON_UTC) + 0.5, AUG_17_NOON_UTC),
    (str(AUG_17_NOON_UTC), AUG_17_NOON_UTC),
    (None, 0),
])
def test_created_at_takes_unix_seconds_and_iso_8601(folder, given, expected):
    (line,), errors = read(folder, {"path": "a.mp4", "created_at": given})
    assert errors == []
    assert line.metadata.created_at == expected


BAD_FIELDS = [
    ({"created_at": "next tuesday"}, "created_at", "ISO 8601"),
    ({"created_at": "2026-13-45T12:00:00Z"}, "created_at", "ISO 8601"),
    ({"created_at": -5}, "created_at", "before 1970"),
    ({"created_at": AUG_17_NOON_UTC * 1000}, "created_at", "milliseconds"),
    ({"created_at": True}, "created_at", "unix seconds"),
    ({"created_at": [2026]}, "created_at", "unix seconds"),
    ({"likes": -1}, "likes", "must not be negative"),
    ({"likes": "120"}, "likes", "whole number"),
    ({"views": 2.5}, "views", "whole number"),
    ({"views": 2**63}, "views", "64 bits"),
    ({"caption": 42}, "caption", "a string"),
    ({"id": ["a"]}, "id", "a string"),
    ({"hashtags": "dog,cat"}, "hashtags", "a list of strings"),
    ({"hashtags": ["dog", 3]}, "hashtags", "a string"),
    ({"author": "u1"}, "author", "an object"),
    ({"author": {"followers": -3}}, "author.followers", "must not be negative"),
    ({"author": {"likes": "many"}}, "author.likes", "whole number"),
    ({"label": {"x": 1}}, "label", "a string"),
    ({"path": "missing.mp4"}, "path", "no such file"),
    ({"path": 7}, "path", "path as a string"),
    ({"path": ""}, "path", "path as a string"),
]


@pytest.mark.parametrize("bad, field, why", BAD_FIELDS, ids=[f"{f}:{w}" for _, f, w in BAD_FIELDS])
def test_a_bad_field_names_file_line_and_field_and_the_other_lines_go_on(folder, bad, field, why):
    good = {"path": "a.mp4", "id": "first", "created_at": "2026-08-17T12:00:00Z"}
    lines, errors = read(folder, good, {"path": "a.mp4", "id": "second", **bad}, "", {**good, "id": "third"})
    assert [line.metadata.id for line in lines] == ["first", "third"]
    assert [line.number for line in lines] == [1, 4]
    assert len(errors) == 1
    assert errors[0].startswith(f"{folder / 'videos.jsonl'}:2: field '{field}': ")
    assert why in errors[0]


@pytest.mark.parametrize("text, why", [
    ("{not json}", "not JSON"),
    ('["a list"]', "expected a JSON object, got list"),
    ("12", "expected a JSON object, got int"),
    ('{"id": "no path"}', "field 'path': missing"),
])
def test_a_line_that_is_no_entry_is_named_and_skipped(folder, text, why):
    lines, errors = read(folder, text, {"path": "a.mp4"})
    assert [line.number for line in lines] == [2]
    assert len(errors) == 1 and errors[0].startswith(f"{folder / 'videos.jsonl'}:1: ") and why in errors[0]


def test_a_good_line_keeps_every_field(folder):
    entry = {"path": "a.mp4", "id": 12, "caption": "my dog", "hashtags": ["#dog", "pets"], "likes": 120,
             "views": 3000.0, "created_at": 1700000000, "label": "pets", "unknown": "ignored",
             "author": {"id": "u1", "followers": 900, "following": None, "likes": 15000, "videos": 40}}
    (line,), errors = read(folder, entry)
    assert errors == []
    assert line.path == folder / "a.mp4" and line.label == "pets"
    m = line.metadata
    assert (m.id, m.caption, list(m.hashtags), m.likes, m.views) == ("12", "my dog", ["dog", "pets"], 120, 3000)
    assert (m.author.id, m.author.followers, m.author.following, m.author.videos) == ("u1", 900, 0, 40)


def test_likes_stay_unset_when_the_line_has_none(folder):
    (line,), _ = read(folder, {"path": str(folder / "a.mp4")})  # an absolute path too
    assert not line.metadata.HasField("likes") and not line.metadata.HasField("views")


def test_without_a_handler_the_first_bad_line_raises_with_its_place(folder):
    path = folder / "videos.jsonl"
    path.write_text('{"path": "a.mp4"}\n{"path": "a.mp4", "created_at": "soon"}\n')
    with pytest.raises(ValueError, match=r"videos.jsonl:2: field 'created_at': "):
        client.read_manifest(path)


def test_evaluate_reads_manifests_through_the_same_checks(folder):
    from reelvec.tools.evaluation import report

    (folder / "b.mp4").write_bytes(b"another")
    read(folder, {"path": "a.mp4", "label": "x"}, {"path": "a.mp4", "likes": -2, "label": "y"},
         {"path": "b.mp4", "label": "z"})
    errors = []
    items, labels = report.corpus([], folder / "videos.jsonl", folder, errors.append)
    assert [path.name for path, _ in items] == ["a.mp4", "b.mp4"]
    assert labels == ["x", "z"]  # each label stays with its own line
    assert len(errors) == 1 and ":2: field 'likes': " in errors[0]
