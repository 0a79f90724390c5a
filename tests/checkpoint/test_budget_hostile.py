"""Hostile budget files: aliases, huge values, NaN costs, fractional bytes, empty or unset
disk paths, binary and deeply nested files. Each is a quick BudgetError naming the file,
the key and a capped value, and saying what would be right."""

from __future__ import annotations

import time

import pytest
import yaml

from diffkit.checkpoint import load_budget
from diffkit.config import MAX_YAML_BYTES, show
from diffkit.errors import BudgetError


def _write_text(tmp_path, text: str | bytes):
    path = tmp_path / "b.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def _write(tmp_path, data):
    return _write_text(tmp_path, yaml.safe_dump(data))


def _alias_bomb() -> str:
    """About 300 bytes that expand to 9**9 (387 million) items."""
    levels = ["&a0 [x,x,x,x,x,x,x,x,x]"]
    levels += [f"&a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return "budget: {memory: 1GiB}\nbomb: [" + ", ".join(levels) + "]\n"


def test_yaml_aliases_are_refused_quickly(tmp_path):
    text = _alias_bomb()
    assert len(text) < 400
    t0 = time.perf_counter()
    with pytest.raises(BudgetError, match=r"b.yaml: line 2: YAML aliases \(\*a0\) are not "
                                          r"accepted in a budget file; write the value out") as e:
        load_budget(_write_text(tmp_path, text))
    assert time.perf_counter() - t0 < 1.0
    assert len(str(e.value)) < 300


def test_anchors_without_aliases_still_load(tmp_path):
    assert load_budget(_write_text(tmp_path, "budget: {memory: &m 1GiB}\n")).memory == 2**30


@pytest.mark.parametrize("value", ["x" * 100_000, list(range(3000)),
                                   {f"k{i}": list(range(20)) for i in range(200)}],
                         ids=["string", "list", "dict"])
def test_every_echoed_value_is_capped(tmp_path, value):
    with pytest.raises(BudgetError, match=r"b.yaml: unknown key 'budget.swap' \(value .{1,80}\); "
                                          r"accepted keys here: memory, disk") as e:
        load_budget(_write(tmp_path, {"budget": {"memory": "1GiB", "swap": value}}))
    assert len(str(e.value)) < 250


def test_show_caps_strings_and_nested_containers():
    assert show("ab") == "'ab'"
    assert len(show("y" * 10**6)) == 80 and show("y" * 10**6).endswith("\u2026")
    nested = ["x"]
    for _ in range(50):
        nested = [nested] * 9
    assert len(show(nested)) <= 80


@pytest.mark.parametrize("text,match", [
    ("costs: {reverse: .nan}", r"b.yaml: costs.reverse = nan is not a cost; use a number >= 0 "
                               r"and finite"),
    ("costs: {disk_read: .inf}", r"b.yaml: costs.disk_read = inf is not a cost"),
    ("costs: {forward: -.inf}", r"b.yaml: costs.forward = -inf is not a cost"),
])
def test_non_finite_costs_are_refused(tmp_path, text, match):
    with pytest.raises(BudgetError, match=match):
        load_budget(_write_text(tmp_path, "budget: {memory: 1GiB}\n" + text + "\n"))


@pytest.mark.parametrize("key,text", [
    ("budget.memory", "budget: {memory: '0.5'}"),
    ("budget.disk.size", "budget: {memory: 1GiB, disk: {path: /tmp, size: '0.5'}}"),
])
def test_a_fractional_bare_number_asks_for_a_unit(tmp_path, key, text):
    with pytest.raises(BudgetError, match=rf"b.yaml: {key}: '0.5' is not a whole number of "
                                          r"bytes \(a number without a unit counts bytes\); "
                                          r"write the unit, e.g. '0.5GiB' or '0.5MB'"):
        load_budget(_write_text(tmp_path, text + "\n"))


def test_a_size_too_large_for_a_float_is_refused(tmp_path):
    with pytest.raises(BudgetError, match=r"budget.memory: '9{20,}.*\u2026 is too large"):
        load_budget(_write(tmp_path, {"budget": {"memory": "9" * 400 + "GiB"}}))


@pytest.mark.parametrize("path,match", [
    ("''", r"budget.disk.path = '' is not a directory; give one, e.g. /tmp/diffkit"),
    ("'   '", r"budget.disk.path = '   ' is not a directory"),
    ("null", r"budget.disk.path = None is not a directory"),
    ("[a, b]", r"budget.disk.path = \['a', 'b'\] is not a directory"),
    ("$DIFFKIT_TEST_UNSET_VAR/snapshots", r"budget.disk.path = '\$DIFFKIT_TEST_UNSET_VAR/snap"
     r"shots' uses the environment variable DIFFKIT_TEST_UNSET_VAR, which is not set; set it"),
    ("'${DIFFKIT_TEST_UNSET_VAR}/s'", r"budget.disk.path = '\$\{DIFFKIT_TEST_UNSET_VAR\}/s' "
                                      r"uses the environment variable DIFFKIT_TEST_UNSET_VAR"),
    ("~diffkit_no_such_user/s", r"budget.disk.path = '~diffkit_no_such_user/s': "
                                r"'~diffkit_no_such_user' is not a known user's home"),
])
def test_empty_or_unset_disk_paths_are_refused(tmp_path, monkeypatch, path, match):
    monkeypatch.delenv("DIFFKIT_TEST_UNSET_VAR", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BudgetError, match=r"b.yaml: " + match):
        load_budget(_write_text(tmp_path, f"budget:\n  memory: 1GiB\n  disk: {{path: {path}, "
                                          f"size: 1GiB}}\n"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.yaml"]  # nothing created


def test_a_set_variable_in_the_disk_path_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFKIT_TEST_SCRATCH", str(tmp_path))
    budget = load_budget(_write_text(tmp_path, "budget: {memory: 1GiB, disk: "
                                               "{path: $DIFFKIT_TEST_SCRATCH/d, size: 1GiB}}\n"))
    assert budget.disk.path == tmp_path / "d"


def test_a_binary_file_is_refused(tmp_path):
    with pytest.raises(BudgetError, match=r"b.yaml: the budget file is not UTF-8 text \(byte 0 "
                                          r"is b'\\x89'\); give a YAML text file"):
        load_budget(_write_text(tmp_path, b"\x89P\xff\x00\x01binary"))


def test_a_deeply_nested_file_is_refused(tmp_path):
    with pytest.raises(BudgetError, match=r"b.yaml: the budget file is nested too deeply"):
        load_budget(_write_text(tmp_path, "budget: " + "[" * 5000 + "]" * 5000 + "\n"))


def test_a_huge_file_is_refused_without_parsing_it(tmp_path):
    text = "# padding\n" * (MAX_YAML_BYTES // 10 + 1)
    t0 = time.perf_counter()
    with pytest.raises(BudgetError, match=rf"b.yaml: the budget file is larger than "
                                          rf"{MAX_YAML_BYTES} bytes"):
        load_budget(_write_text(tmp_path, text))
    assert time.perf_counter() - t0 < 1.0


def test_a_yaml_syntax_error_message_is_capped(tmp_path):
    with pytest.raises(BudgetError, match=r"b.yaml: not valid YAML") as e:
        load_budget(_write_text(tmp_path, "budget: {memory: " + "z" * 100_000 + "\n  - x\n"))
    assert len(str(e.value)) < 500
