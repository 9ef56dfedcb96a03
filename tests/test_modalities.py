"""The one map between vector names and the protos' Modality enum."""

import pytest

from reelvec import errors, modalities
from reelvec.v1 import common_pb2


def test_every_name_goes_to_the_protos_and_back():
    for name in modalities.DIMS:
        assert modalities.from_proto(modalities.to_proto(name)) == name
    assert modalities.from_proto(common_pb2.MODALITY_UNSPECIFIED) == modalities.FUSED
    assert set(common_pb2.Modality.values()) == {modalities.to_proto(n) for n in modalities.DIMS} | {
        common_pb2.MODALITY_UNSPECIFIED}  # a new enum value needs a vector name here


def test_unknown_values_say_what_to_use():
    with pytest.raises(errors.InvalidInput, match="unknown modality 99: use one of"):
        modalities.from_proto(99)
    with pytest.raises(ValueError, match="unknown modality 'smell'"):
        modalities.to_proto("smell")

