from pathlib import Path

import pytest

from edgeseal.audit.config import AuditConfig, GateConfig, Variant, config_from_mapping, config_to_dict, load_recipe
from edgeseal.runtime.errors import ConfigError

RECIPE = Path(__file__).resolve().parents[2] / "examples" / "audit" / "recipe.toml"


def test_example_recipe_maps_onto_the_dataclasses():
    cfg = load_recipe(RECIPE)
    assert cfg.seeds == (0, 1, 2)
    assert cfg.variants == tuple(Variant)
    assert cfg.train.hidden == (256, 256) and cfg.train.weight_decay == 0.0
    assert cfg.membership.reference_models == 16
    assert cfg.robustness.epsilons_for("digits") == (0.0, 0.05, 0.1, 0.15, 0.2)
    assert cfg.gate.max_mia_auc_increase == 0.05 and cfg.gate.max_mia_auc is None
    assert cfg.pool_size == {"breast_cancer": 250, "digits": 600}
    d = config_to_dict(cfg)
    assert d["datasets"] == ["breast_cancer", "digits"] and d["variants"][0] == "int8"
    with pytest.raises(Exception):
        cfg.seeds = (1,)  # frozen


def test_strings_and_enums_both_work():
    assert AuditConfig(variants=["int8", Variant.PRUNED]).variants == (Variant.INT8, Variant.PRUNED)


@pytest.mark.parametrize("table,match", [
    ({"seedz": [1]}, "unknown key"),
    ({"gate": {"max_auc": 0.6}}, "unknown key"),
    ({"variants": ["int4"]}, "unknown value 'int4'"),
    ({"datasets": ["mnist"]}, "unknown value 'mnist'"),
    ({"seeds": [1, 1]}, "distinct"),
    ({"membership": {"reference_models": 3}}, "even"),
    ({"gate": {"max_mia_auc": 3}}, r"\[-1, 1\]"),
    ({"robustness": {"epsilons": {"digits": [-0.1]}}}, "epsilons.digits"),
    ({"robustness": {"epsilons": {"digits": [0.0, 0.1, 0.2]}}}, "breast_cancer"),
    ({"train": {"hidden": []}}, "hidden"),
    ({"compression": {"prune_amount": 1.5}}, "prune_amount"),
    ({"pool_size": {"digits": 3}}, "pool_size"),
    ({"gate": [1]}, "must be a table"),
])
def test_bad_recipes_are_config_errors_that_name_the_key(table, match):
    with pytest.raises(ConfigError, match=match):
        config_from_mapping(table)


def test_recipe_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_recipe(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[audit\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_recipe(bad)
    other = tmp_path / "other.toml"
    other.write_text("[compress]\nx = 1\n")
    with pytest.raises(ConfigError, match=r"no \[audit\]"):
        load_recipe(other)


def test_gate_defaults():
    g = GateConfig()
    assert g.max_mia_auc_increase == 0.05 and g.min_robust_accuracy_ratio is None
