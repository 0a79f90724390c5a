"""YAML budgets: units, the embedded default, and one precise error per bad value."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from diffkit.checkpoint import load_budget, parse_bytes
from diffkit.checkpoint.budget import DEFAULT_YAML
from diffkit.errors import BudgetError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("text,value", [
    ("256MiB", 256 * 2**20), ("2GB", 2 * 10**9), ("1.5GiB", 3 * 2**29), (4096, 4096),
    ("4096", 4096), ("512 KiB", 2**19), ("0", 0), ("3kB", 3000),
])
def test_parse_bytes(text, value):
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text,match", [
    ("12 parsecs", r"size: cannot parse '12 parsecs'; use .*MiB"),
    ("-5MiB", r"'-5MiB' is negative"), (-1, "-1 is negative"),
    (True, "True is not a size"), (1.5, "1.5 is not a size"), ("MiB", "cannot parse 'MiB'"),
])
def test_parse_bytes_errors(text, match):
    with pytest.raises(BudgetError, match=match):
        parse_bytes(text)


def test_default_is_the_shipped_file():
    assert (CONFIGS / "default.yaml").read_text() == DEFAULT_YAML
    assert load_budget() == load_budget(CONFIGS / "default.yaml").__class__(
        **{**_fields(load_budget(CONFIGS / "default.yaml")), "source": "<default>"})
    assert load_budget().memory == 256 * 2**20 and load_budget().schedule == "auto"


def _fields(budget):
    return {k: getattr(budget, k) for k in budget.__dataclass_fields__}


@pytest.mark.parametrize("name", ["default", "laptop", "workstation", "disk"])
def test_shipped_configs_load(name):
    budget = load_budget(CONFIGS / f"{name}.yaml")
    assert budget.memory > 0 and budget.source.endswith(f"{name}.yaml")
    assert (budget.disk is not None) == (name == "disk")


def _write(tmp_path, data):
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("data,match", [
    ({"budget": {"memory": "1GiB", "swap": 3}}, r"b.yaml: unknown key 'budget.swap' \(value 3\)"
     r"; accepted keys here: memory, disk"),
    ({"budget": {"memory": "1GiB"}, "extra": 1}, r"unknown key 'extra'.*budget, schedule, costs"),
    ({"budget": {"memory": "-1GiB"}}, r"b.yaml: budget.memory: '-1GiB' is negative"),
    ({"budget": {"memory": "lots"}}, r"b.yaml: budget.memory: cannot parse 'lots'; use"),
    ({"budget": {"memory": "1GiB"}, "schedule": "magic"},
     r"schedule 'magic' is unknown; accepted: auto, store_all, periodic, revolve, online"),
    ({"budget": {"memory": "1GiB"}, "costs": {"forward": -1}},
     r"costs.forward = -1 is not a cost; use a number >= 0"),
    ({"budget": {"memory": "1GiB"}, "costs": {"forward": 0}}, r"costs.forward = 0.0 must be > 0"),
    ({"budget": {"memory": "1GiB"}, "costs": {"fwd": 1}}, r"unknown key 'costs.fwd'"),
    ({"budget": {}}, r"budget.memory is missing"),
    ({"budget": {"memory": "1GiB", "disk": {"path": "/tmp/x"}}}, r"budget.disk.size is missing"),
    ({"budget": {"memory": "1GiB", "disk": {"path": "/tmp", "size": "1 GiBs"}}},
     r"budget.disk.size: cannot parse '1 GiBs'"),
    ({"budget": {"memory": "1GiB"}, "schedule": "multilevel"}, r"'multilevel' needs budget.disk"),
    ([1, 2], r"the top level must be a mapping"),
])
def test_every_bad_value_names_file_key_value(tmp_path, data, match):
    with pytest.raises(BudgetError, match=match):
        load_budget(_write(tmp_path, data))


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(BudgetError, match=r"nope.yaml: cannot read the budget file"):
        load_budget(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("budget: [unclosed\n")
    with pytest.raises(BudgetError, match=r"bad.yaml: not valid YAML"):
        load_budget(bad)


def test_dict_budget_and_disk(tmp_path):
    b = load_budget({"budget": {"memory": 10**6, "disk": {"path": str(tmp_path / "new" / "d"),
                                                         "size": "1GB"}}})
    assert b.disk.size == 10**9 and b.source == "<dict>"


def test_disk_path_not_writable(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    data = {"budget": {"memory": "1GiB", "disk": {"path": str(blocker / "d"), "size": "1GiB"}}}
    with pytest.raises(BudgetError, match=r"b.yaml: budget.disk.path '.*a_file/d' is not writable"):
        load_budget(_write(tmp_path, data))


def test_disk_path_in_a_directory_nobody_can_write(tmp_path):
    # os.access says yes to root even here; the check must really try
    data = {"budget": {"memory": "1GiB", "disk": {"path": "/proc/diffkit", "size": "1GiB"}}}
    with pytest.raises(BudgetError, match=r"budget.disk.path '/proc/diffkit' is not writable"):
        load_budget(_write(tmp_path, data))
