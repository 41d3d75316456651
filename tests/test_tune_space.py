"""Tune search space and stage plan: YAML declarations, checks with one-line errors, narrowing, LoRA rank only with LoRA."""
import optuna.distributions as od
import pytest

from medfit.commands.tune import main
from medfit.config import config_from_dict, load_config, updated
from medfit.errors import ConfigError
from medfit.tune.space import parse_space, with_params
from medfit.tune.stages import check_plan, plan_stage


def test_space_from_yaml_merges_over_the_builtin_space(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("tune:\n  space:\n    train.optim.lr: {type: float, low: 1e-4, high: 1.0e-2, log: true}\n"
                    "    train.batch_size: {type: int, low: 8, high: 64, step: 8}\n")
    space = parse_space(load_config(path).tune)
    assert (space["train.optim.lr"].low, space["train.optim.lr"].high, space["train.optim.lr"].log) == (1e-4, 1e-2, True)  # '1e-4' string read as a number
    assert space["train.batch_size"].type == "int" and space["train.batch_size"].step == 8
    assert space["train.optim.scheduler"].choices == ["cosine", "none"]  # built-in entries stay


@pytest.mark.parametrize("spec, message", [
    ({"type": "float", "low": 1.0, "high": 0.1}, "low < high"),
    ({"type": "float", "low": 0.0, "high": 0.1, "log": True}, "low > 0"),
    ({"type": "categorical"}, "non-empty 'choices'"),
    ({"type": "float", "lo": 0.1, "high": 1.0}, "tune.space.train.optim.lr.lo: unknown key"),
    ({"type": "loguniform", "low": 0.1, "high": 1.0}, "tune.space.train.optim.lr.type: expected one of"),
    ("0.1..1", "expected a mapping"),
])
def test_bad_parameter_declarations_name_the_key(spec, message):
    cfg = config_from_dict({"tune": {"space": {"train.optim.lr": spec}}})
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_space(cfg.tune)


def test_plan_checks_name_the_stage_and_the_fix():
    def stages(*s):
        return config_from_dict({"tune": {"stages": list(s)}})
    with pytest.raises(ConfigError, match=r"tune.stages\[0\].params: 'train.momentum' is not declared in tune.space"):
        check_plan(stages({"name": "a", "params": ["train.momentum"], "trials": 2}))
    with pytest.raises(ConfigError, match="used by two stages"):
        check_plan(stages({"name": "a", "params": ["train.optim.lr"]}, {"name": "a", "params": ["train.optim.lr"]}))
    with pytest.raises(ConfigError, match="narrow: 'train.optim.weight_decay' is not one of this stage's params"):
        check_plan(stages({"name": "a", "params": ["train.optim.lr"], "narrow": {"train.optim.weight_decay": 3}}))
    with pytest.raises(ConfigError, match=r"narrow.train.optim.lr: expected a factor > 1"):
        check_plan(stages({"name": "a", "params": ["train.optim.lr"], "narrow": {"train.optim.lr": 0.5}}))
    with pytest.raises(ConfigError, match="seed stage"):
        check_plan(stages({"name": "s", "seeds": 3, "params": ["train.optim.lr"]}))
    bad_key = config_from_dict({"tune": {"space": {"train.lrr": {"low": 0.1, "high": 1.0}},
                                         "stages": [{"name": "a", "params": ["train.lrr"]}]}})
    with pytest.raises(ConfigError, match="tune.space.train.lrr: no such config key"):
        check_plan(bad_key)


def test_default_plan_is_four_stages_and_searches_lora_rank_only_with_lora():
    cfg = config_from_dict({"train": {"optim": {"lr": 2e-3}}})
    assert [s.name for s in check_plan(cfg)] == ["lr", "regularisation", "schedule", "seeds"]
    full = plan_stage(cfg, 1, cfg)
    assert set(full.distributions) == {"train.optim.lr", "train.optim.weight_decay", "train.batch_size"}
    lora_cfg = config_from_dict({"model": {"finetune": "lora"}, "train": {"optim": {"lr": 2e-3}}})
    assert "model.lora.r" in plan_stage(lora_cfg, 1, lora_cfg).distributions
    seeds = plan_stage(cfg, 3, cfg)
    assert seeds.is_seed_stage and seeds.seeds() == [0, 1, 2, 3, 4] and seeds.budget == 5


def test_stage_two_narrows_lr_around_the_previous_best_and_starts_there():
    cfg = config_from_dict({})
    base = with_params(cfg, {"train.optim.lr": 3e-3})  # as if stage 1 found 3e-3
    plan = plan_stage(cfg, 1, base)
    lr = plan.distributions["train.optim.lr"]
    assert isinstance(lr, od.FloatDistribution) and lr.log
    assert lr.low == pytest.approx(1e-3) and lr.high == pytest.approx(9e-3)
    assert plan.start["train.optim.lr"] == 3e-3 and plan.start["train.batch_size"] == 32
    edge = plan_stage(cfg, 1, with_params(cfg, {"train.optim.lr": 0.08}))
    assert edge.distributions["train.optim.lr"].high == 0.1  # clipped to the declared range


def test_sampled_value_of_the_wrong_type_is_a_config_error():
    with pytest.raises(ConfigError, match="train.batch_size: expected int"):
        with_params(config_from_dict({}), {"train.batch_size": "big"})


def test_cli_reports_a_bad_plan_on_one_line(tmp_path, capsys):
    path = tmp_path / "t.yaml"
    path.write_text("tune:\n  stages: [{name: a, params: [train.nesterov], trials: 2}]\n")
    assert main([str(path), "--study", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "train.nesterov" in err and "\n" not in err


def test_storage_errors_name_the_url_without_its_password():
    from medfit.tune.search import open_storage

    with pytest.raises(ConfigError, match=r"--storage nosuchdb\+driver://medfit:\*\*\*@db/tune: cannot open") as err:
        open_storage("nosuchdb+driver://medfit:secret@db/tune", 60)
    assert "secret" not in str(err.value)


def test_pruner_and_sampler_follow_the_config_and_the_stage():
    import optuna

    from medfit.tune.search import make_pruner, make_sampler

    cfg = config_from_dict({"tune": {"pruner": "hyperband", "stages": [
        {"name": "lr", "params": ["train.optim.lr"], "trials": 9, "epochs": 6},
        {"name": "fixed", "params": ["train.optim.lr"], "trials": 2, "prune": False},
        {"name": "seeds", "seeds": 2}]}})
    lr, fixed, seeds = (plan_stage(cfg, i, cfg) for i in range(3))
    hyperband = make_pruner(cfg, lr)
    assert isinstance(hyperband, optuna.pruners.HyperbandPruner) and hyperband._max_resource == 6
    assert isinstance(make_pruner(cfg, fixed), optuna.pruners.NopPruner)
    assert isinstance(make_pruner(cfg, seeds), optuna.pruners.NopPruner)
    cfg = updated(cfg, {"tune.pruner": "median"})
    assert isinstance(make_pruner(cfg, lr), optuna.pruners.MedianPruner)
    assert isinstance(make_sampler(cfg, lr, 0), optuna.samplers.TPESampler)
    assert isinstance(make_sampler(cfg, seeds, 0), optuna.samplers.GridSampler)
