"""Settings and the data dir, read one way by services and tools (reelvec/config.py)."""

from pathlib import Path

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
