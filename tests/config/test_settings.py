from pathlib import Path

import pytest

from configs import ConfigError, Settings, load_config
from configs.settings import env_overrides


@pytest.mark.parametrize("profile", ["demo", "default"])
def test_shipped_profiles_validate(profile: str) -> None:
    cfg = load_config(f"configs/{profile}.yaml", environ={})
    assert isinstance(cfg, Settings)
    assert cfg.profile == profile


def test_bare_profile_name_resolves_to_shipped_file() -> None:
    assert load_config("demo", environ={}).profile == "demo"


def test_shipped_relative_path_resolves_outside_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config("configs/demo.yaml", environ={}).profile == "demo"
    with pytest.raises(ConfigError, match=r"configs/nope\.yaml: config file not found"):
        load_config("configs/nope.yaml", environ={})
    with pytest.raises(ConfigError, match=r"other/demo\.yaml: config file not found"):
        load_config("other/demo.yaml", environ={})


def test_environment_overrides_file_and_overrides_win(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text("seed: 1\ndata:\n  synthetic:\n    n_bars: 100\n")
    env = {"EDGEFLOW_SEED": "2", "EDGEFLOW_DATA__SYNTHETIC__N_BARS": "300"}
    cfg = load_config(file, environ=env)
    assert cfg.seed == 2
    assert cfg.data.synthetic.n_bars == 300
    cfg = load_config(file, overrides={"seed": 3}, environ=env)
    assert cfg.seed == 3


def test_secret_environment_variables_never_enter_config() -> None:
    env = {"EDGEFLOW_HMAC_KEYS": "k1:" + "ab" * 32, "EDGEFLOW_SIGNING_KEY_ID": "k1"}
    assert env_overrides(env) == {}
    load_config(environ=env)  # and they do not trip extra="forbid"


def test_invalid_file_lists_every_bad_field_with_its_path(tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text(
        "seed: -1\nenvironment: staging\ndata:\n  source: ftp\n  synthetic:\n    n_bars: 0\n"
        "bogus: 1\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(file, environ={})
    msg = str(info.value)
    assert msg.startswith(f"{file}: invalid configuration (5 problem(s)):")
    for path in ("seed", "environment", "data.source", "data.synthetic.n_bars", "bogus"):
        assert f"  - {path}: " in msg


def test_missing_file_and_bad_yaml_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml", environ={})
    bad = tmp_path / "broken.yaml"
    bad.write_text("seed: [1,\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid YAML"):
        load_config(bad, environ={})


def test_settings_are_frozen() -> None:
    cfg = load_config(environ={})
    with pytest.raises(ValueError, match="frozen"):
        cfg.seed = 5  # type: ignore[misc]
