"""Settings and the data dir, read one way by services and tools (reelvec/config.py)."""

import dataclasses
from pathlib import Path

import pytest

from reelvec import config


def test_the_data_dir_comes_from_the_flag_then_the_environment_then_the_default(monkeypatch, tmp_path):
    monkeypatch.setenv("REELVEC_DATA_DIR", str(tmp_path / "env"))
    assert config.data_dir(str(tmp_path / "flag")) == tmp_path / "flag"
    assert config.data_dir() == tmp_path / "env"
    monkeypatch.delenv("REELVEC_DATA_DIR")
    assert config.data_dir() == Path(config.ServerSettings.data_dir)


def test_model_versions_read_and_write_one_way():
    from reelvec.models import ModelVersion

    assert ModelVersion.parse("efficientnet_lite0:2") == ModelVersion("efficientnet_lite0", "2")
    assert str(ModelVersion("audio_logmel", "3")) == "audio_logmel:3"
    assert ModelVersion.parse("stats") == ModelVersion("stats") and str(ModelVersion("stats")) == "stats"
    assert ModelVersion.parse("") == ModelVersion("")


def test_a_setting_with_choices_refuses_others_from_flags_and_from_the_environment(monkeypatch, capsys):
    @dataclasses.dataclass
    class Settings(config.ServerSettings):
        device: str = dataclasses.field(default="cpu", metadata={"choices": ("cpu", "cuda")})

    assert config.load(Settings, ["--device", "cuda"]).device == "cuda"
    with pytest.raises(SystemExit):
        config.load(Settings, ["--device", "gpu"])
    assert "invalid choice: 'gpu'" in capsys.readouterr().err
    monkeypatch.setenv("REELVEC_DEVICE", "gpu")  # argparse never checks a default
    with pytest.raises(SystemExit):
        config.load(Settings, [])
    assert "REELVEC_DEVICE must be one of cpu, cuda, not 'gpu'" in capsys.readouterr().err
