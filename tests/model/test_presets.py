import argparse
import json

import pytest

from glamkit.commands.model import register
from model.info import model_info
from model.presets import PAPER_PARAMS, PRESETS, get_config


@pytest.mark.parametrize("name", ["glam-1.7b-64e", "glam-8b-64e", "glam-64b-64e"])
def test_moe_presets_match_paper_within_5_percent(name):
    info = model_info(get_config(name))  # shapes only: the 1.2T model allocates nothing
    total, activated = PAPER_PARAMS[name]
    assert info["total_params"] == pytest.approx(total, rel=0.05)
    assert info["activated_params"] == pytest.approx(activated, rel=0.05)


def test_counting_convention_on_a_small_moe():
    cfg = get_config("tiny-moe", vocab_size=100, num_layers=2, embed_dim=8, mlp_dim=16, num_heads=2,
                     head_dim=4, num_experts=4, relpos_buckets=32)
    m, h, e, v = 8, 16, 4, 100
    attn = 4 * m * 2 * 4 + 32 * 2 + 2 * m  # q, k, v, o; relative bias table; two norms
    dense, expert = 3 * m * h, 2 * m * h
    router = m * e
    total = v * m + m + 2 * attn + dense + router + e * expert  # embedding counted once; final norm
    info = model_info(cfg)
    assert info["total_params"] == total
    assert info["activated_params"] == total - v * m - (e - 2) * expert  # k = 2 experts, no embedding
    assert info["flops_per_token"] == 6 * (info["activated_params"] + v * m) + 12 * 2 * 2 * 4 * 1024


def test_get_config_overrides_and_errors():
    cfg = get_config("tiny-moe", vocab_size=4000, dispatch="einsum")
    assert cfg.vocab_size == 4000 and cfg.dispatch == "einsum"
    assert cfg.num_experts == PRESETS["tiny-moe"].num_experts
    with pytest.raises(ValueError, match="glam-8b-64e"):  # the message lists the presets
        get_config("glam-9b")
    with pytest.raises(ValueError, match="num_layer"):
        get_config("tiny", num_layer=3)
    with pytest.raises(ValueError, match="dispatch"):
        get_config("tiny", dispatch="scatter")
    yaml_rules = [["batch", ["data"]], ["expert", "expert"]]  # as a YAML file would give them
    rules = get_config("tiny", sharding_rules=yaml_rules).sharding_rules
    assert rules == (("batch", ("data",)), ("expert", "expert"))


def _parse(argv):
    parser = argparse.ArgumentParser(prog="glamkit")
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_model_info_json(capsys):
    args = _parse(["model", "info", "tiny-moe", "--json"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["preset"] == "tiny-moe" and out["total_params"] > out["activated_params"] > 0
    args = _parse(["model", "info", "nope"])
    with pytest.raises(ValueError, match="tiny-moe"):
        args.func(args)
