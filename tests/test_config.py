"""Config: YAML + typed dotted overrides, validation errors listing valid keys, round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from tmkt.train.config import Config, ConfigError, apply_overrides, load_config, save_config
from tmkt.train.methods import METHODS

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_defaults_follow_spec() -> None:
    cfg = Config()
    assert cfg.method.name == "tmkt" and cfg.method.beta == 0.5
    assert cfg.method.schedule == "power" and cfg.method.schedule_k == 3.0
    assert cfg.model.tau == 2.0 and cfg.model.v_threshold == 0.5 and cfg.model.alpha == 2.0
    assert cfg.optim.weight_decay == 0.01 and cfg.optim.warmup_epochs == 5
    assert cfg.optim.resolved_lr() == pytest.approx(5e-3 * 120 / 1024)
    assert cfg.method.two_stream == "auto"


def test_overrides_are_typed_by_field() -> None:
    cfg = apply_overrides(
        Config(),
        ["optim.lr=0.02", "optim.epochs=7", "data.size=[48,40]", "train.compile=true",
         "train.max_steps_per_epoch=null", "method.name=dvs", "optim.lr_per_1024=5e-3",
         "experiment.seeds=[1, 2]", "train.run_name=abc"],
    )
    assert cfg.optim.lr == 0.02 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.epochs == 7 and isinstance(cfg.optim.epochs, int)
    assert cfg.data.size == (48, 40)
    assert cfg.train.compile is True
    assert cfg.train.max_steps_per_epoch is None
    assert cfg.method.name == "dvs"
    assert cfg.optim.lr_per_1024 == 5e-3  # YAML 1.1 reads "5e-3" as a string
    assert cfg.experiment.seeds == [1, 2]
    assert cfg.train.run_name == "abc"
    assert Config().optim.lr is None  # the original is untouched


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("optim.lrr=1", "weight_decay"),  # unknown key: lists valid ones of the section
        ("nosuch.x=1", "optim"),
        ("data.bogus=1", "max_per_class"),
        ("optim.epochs=abc", "integer"),
        ("train.compile=maybe", "true or false"),
        ("method.name=nope", "tmkt_untruncated"),  # unknown method lists the valid methods
        ("train.amp=fp8", "bf16"),
        ("optim=3", "section"),
        ("optim.epochs", "key.sub=value"),
        ("optim.epochs=0", ">= 1"),
    ],
)
def test_bad_overrides_name_the_valid_choices(override: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.").replace("(", r"\(")):
        apply_overrides(Config(), [override])


def test_unknown_yaml_key_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("optim:\n  lr: 0.1\n  momentum: 0.9\n")
    with pytest.raises(ConfigError, match=r"optim\.momentum.*batch_size"):
        load_config(p)
    p.write_text("- just a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_yaml_round_trip(tmp_path: Path) -> None:
    cfg = apply_overrides(Config(), ["data.size=[32,32]", "optim.lr=0.1", "method.name=sliding"])
    save_config(cfg, tmp_path / "c.yaml")
    again = load_config(tmp_path / "c.yaml")
    assert again == cfg
    assert Config.from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_shipped_configs_load(name: str) -> None:
    cfg = load_config(CONFIGS / name)
    assert cfg.method.name in METHODS
    for m in cfg.experiment.methods:
        assert m in METHODS or cfg.experiment.variants[m]["method.name"] in METHODS


@pytest.mark.parametrize("name", ["ncaltech101_vgg.yaml", "cifar10dvs_vgg.yaml"])
def test_reference_recipe(name: str) -> None:
    cfg = load_config(CONFIGS / name)
    assert (cfg.model.name, cfg.data.T, cfg.data.size) == ("vgg_snn", 10, (48, 48))
    assert cfg.optim.batch_size == 120 and cfg.optim.epochs == 300
    assert cfg.optim.resolved_lr() == pytest.approx(5e-3 * 120 / 1024)
    assert cfg.optim.weight_decay == 0.01 and cfg.optim.filter_bias_and_bn  # He et al. (timm)
    assert cfg.experiment.seeds == [42, 1024, 90210]
    assert not Config().optim.filter_bias_and_bn


def test_model_speed_options_reach_the_neurons() -> None:
    from tmkt.models import build_model

    cfg = load_config(None, ["model.bn_lif_saves=input", "model.conv_time=fold"])
    model = build_model("cnn_small", 10, (2, 34, 34), **cfg.model.neuron_kwargs())
    assert (model.neuron.conv_time, model.neuron.bn_lif_saves) == ("fold", "input")
    with pytest.raises(ConfigError, match="model.conv_time must be one of: auto, fold, step"):
        load_config(None, ["model.conv_time=bad"])
