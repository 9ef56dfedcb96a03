"""API keys (services/gateway/auth.py): stored hashed, nested scopes, a token bucket per key."""

import json
import time

import grpc
import pytest

from reelvec import errors
from reelvec.v1 import gateway_pb2
from services.gateway.auth import METHOD_SCOPES, RECHECK_SECONDS, KeyStore


def bearer(key: str) -> dict:
    return {"authorization": f"Bearer {key}"}


def test_keys_are_stored_hashed_and_scopes_nest(tmp_path):
    store = KeyStore(tmp_path / "api-keys.json")
    assert not store.enabled
    reader, _ = store.create("read")
    writer, _ = store.create("write")
    admin, record = store.create("admin", rate=10, burst=5)
    text = (tmp_path / "api-keys.json").read_text()
    assert store.enabled and all(k not in text for k in (reader, writer, admin))
    assert (tmp_path / "api-keys.json").stat().st_mode & 0o077 == 0  # private to its owner
    assert {k["id"]: k["scope"] for k in store.list()}[record.id] == "admin"
    assert "digest" not in json.dumps(store.list())

    store.authorize("Search", bearer(reader))
    store.authorize("Index", {"x-api-key": writer})
    store.authorize("Reembed", bearer(admin))
    for method, key in (("Index", reader), ("Delete", reader), ("TrainRegressor", writer), ("Reembed", writer)):
        with pytest.raises(errors.PermissionDenied) as denied:
            store.authorize(method, bearer(key))
        assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED and method in str(denied.value)
    for metadata in ({}, bearer("nonsense"), bearer(reader[:-1] + ("A" if reader[-1] != "A" else "B")),
                     bearer("rvk_00000000_" + "x" * 43)):
        with pytest.raises(errors.Unauthenticated):
            store.authorize("Search", metadata)


def test_every_gateway_rpc_names_its_scope():
    """A method missing from the table would need admin: a new query RPC refused to read keys."""
    methods = {m.name for m in gateway_pb2.DESCRIPTOR.services_by_name["Gateway"].methods}
    assert set(METHOD_SCOPES) == methods


def test_each_key_has_its_own_rate_limit(tmp_path):
    store = KeyStore(tmp_path / "api-keys.json")
    slow, _ = store.create("read", rate=5, burst=2)
    other, _ = store.create("read", rate=5, burst=2)
    store.authorize("Search", bearer(slow))
    store.authorize("Search", bearer(slow))
    with pytest.raises(errors.ResourceExhausted) as limited:
        store.authorize("Search", bearer(slow))
    assert limited.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "retry in" in str(limited.value)
    store.authorize("Search", bearer(other))  # a busy key does not slow the others
    time.sleep(0.25)  # 5 per second: one more token
    store.authorize("Search", bearer(slow))


def test_a_revoked_key_stops_working_within_a_second(tmp_path):
    store = KeyStore(tmp_path / "api-keys.json")
    serving = KeyStore(tmp_path / "api-keys.json")  # the gateway's own view of the file
    key, record = store.create("read")
    serving.authorize("Search", bearer(key))
    assert store.revoke(record.id) and not store.revoke(record.id)
    time.sleep(RECHECK_SECONDS + 0.05)
    with pytest.raises(errors.Unauthenticated):
        serving.authorize("Search", bearer(key))
    with pytest.raises(ValueError):
        store.create("superuser")
