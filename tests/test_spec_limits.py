"""Hostile specs: alias bombs, recursive aliases, deep nesting and absurd sizes are refused
with one problem each, fast; every count, rate and name length has a bound the error names."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from orchestrator import spec as spec_mod
from orchestrator.errors import SpecError
from orchestrator.spec import load_spec_text
from orchestrator.sweep.spec import load_sweep_text

GOOD = """\
name: demo
model: {alpha: 0.25, input_size: 96, weights: none}
data: {source: "host:/tmp", train_per_class: 4, test_per_class: 4}
training: {head_epochs: 1, finetune_epochs: 1}
variants: {method1: {finetune_from: null}}
"""


def _bomb(levels: int = 9, width: int = 9) -> str:
    lines = ["a: &a [" + ", ".join(["x"] * width) + "]"]
    prev = "a"
    for n in "bcdefghijklmnop"[: levels - 1]:
        lines.append(f"{n}: &{n} [" + ", ".join([f"*{prev}"] * width) + "]")
        prev = n
    return "\n".join(lines) + f"\nname: *{prev}\n"


def _refused(text: str, overrides=()) -> list:
    start = time.process_time()  # CPU time: a loaded machine must not fail the bound
    with pytest.raises(SpecError) as err:
        load_spec_text(text, base_dir=Path("/tmp"), overrides=list(overrides), check_paths=False)
    assert time.process_time() - start < 1, "refusing a spec must not take long"
    return err.value.problems


def test_alias_bomb_is_refused_at_once():
    """9 levels × 9 aliases ("billion laughs") is refused, naming the limit, not walked."""
    (p,) = _refused(_bomb())
    assert p.field == "(file)" and "10,000 values" in p.message


def test_alias_bomb_in_a_sweep_is_refused():
    """The sweep loader reads YAML through the same bounded reader."""
    with pytest.raises(SpecError) as err:
        load_sweep_text(_bomb())
    assert "10,000 values" in str(err.value)


def test_recursive_alias_is_refused():
    """`name: &x [*x]` is a cycle: one problem, no RecursionError."""
    (p,) = _refused("name: &x [*x]\n")
    assert "recursive alias" in p.message and p.line == 1


def test_deep_nesting_is_refused():
    """5,000 nested brackets would overflow the YAML composer's stack: one problem naming the
    limit, found without reading past it."""
    (p,) = _refused("name: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "32 levels" in p.message


def test_moderate_nesting_beyond_the_limit_is_refused():
    """40 levels parse fine but exceed the documented depth."""
    (p,) = _refused("name: " + "[" * 40 + "]" * 40 + "\n")
    assert "deeper than 32" in p.message


def test_huge_integer_literal_is_a_yaml_problem():
    """An integer of 5,000 digits cannot even be read: refused, no ValueError."""
    (p,) = _refused(GOOD.replace("seed", "x") + "z: " + "9" * 5000 + "\n")
    assert "integer too long" in p.message


def test_impossible_date_is_a_yaml_problem():
    """YAML reads 2024-02-30 as a date and fails: refused, no ValueError."""
    (p,) = _refused(GOOD + "description: 2024-02-30\n")
    assert "not valid YAML" in p.message


@pytest.mark.parametrize("field, value, bound", [
    ("training.head_epochs", "1.0e+20", "≤ 1000"),
    ("training.finetune_epochs", "1001", "≤ 1000"),
    ("data.train_per_class", "9" * 400, "≤ 100000"),
    ("data.test_per_class", "100001", "≤ 100000"),
    ("data.seed", "4294967296", "≤ 4294967295"),
    ("training.lr", "11", "≤ 10"),
    ("training.finetune_lr", ".inf", "finite"),
    ("name", "x" * 100_000, "at most 100 characters"),
    ("description", "y" * 5000, "at most 4096 characters"),
    ("health.max_wait_s", "1e9", "≤ 604800"),
])
def test_every_count_and_rate_has_a_named_bound(field, value, bound):
    """A value beyond its bound is refused and the message names the bound, in one short line."""
    (p,) = _refused(GOOD, overrides=[f"{field}={value}"])
    assert p.field == f"{field} (from --set)" and bound in p.message
    assert len(str(p)) < 300


def test_class_and_variant_counts_are_bounded():
    """1,001 classes or 101 variants are refused, naming the bound."""
    classes = "[" + ", ".join(f"c{i}" for i in range(1001)) + "]"
    (p,) = _refused(GOOD, overrides=[f"head.classes={classes}"])
    assert "at most 1000" in p.message
    variants = "{" + ", ".join(f"v{i}: {{}}" for i in range(101)) + "}"
    (p,) = _refused(GOOD, overrides=[f"variants={variants}"])
    assert "at most 100" in p.message


def test_long_class_name_is_refused():
    """A 101-character class name is refused, naming the limit."""
    (p,) = _refused(GOOD, overrides=[f"head.classes=[a, {'b' * 101}]"])
    assert "at most 100 characters" in p.message


def test_set_into_a_scalar_says_from_set():
    """`--set name.x=1` replaces the name with a mapping: the problem says (from --set), no line."""
    (p,) = _refused(GOOD, overrides=["name.x=1"])
    assert p.field == "name (from --set)" and p.line is None


def test_set_with_an_alias_bomb_is_refused():
    """A --set value goes through the same bounded YAML reader."""
    value = "[" * 40 + "]" * 40
    (p,) = _refused(GOOD, overrides=[f"description={value}"])
    assert p.field == "description (from --set)" and "32" in p.message


def test_set_with_an_empty_key_part_is_refused():
    """`--set training..lr=1` names --set and shows the expected form."""
    (p,) = _refused(GOOD, overrides=["training..lr=1"])
    assert p.field == "--set" and "empty part" in p.message


def test_readme_lists_every_bound():
    """Each bound constant of the spec appears in the README's limits section."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### Limits", 1)[1].split("\n## ", 1)[0]
    for name in ("MAX_NAME", "MAX_TEXT", "MAX_EPOCHS", "MAX_PER_CLASS", "MAX_CLASSES",
                 "MAX_VARIANTS", "MAX_LR", "MAX_SEED"):
        value = getattr(spec_mod, name)
        shown = f"{value:,}" if isinstance(value, int) else f"{value:g}"
        assert shown in section, f"README limits do not show {name} = {shown}"


def test_one_line_has_no_double_full_stop_and_no_line_break():
    """A reason ending in a full stop inside a message that adds one: one stop, one line."""
    from orchestrator.errors import OrchError

    e = OrchError("Could not download x: timed out..", hint="Try again\nlater..")
    assert e.one_line() == "Could not download x: timed out. Try again later."
    assert OrchError("Wait...").one_line() == "Wait..."


@pytest.mark.parametrize("override", ["data.source=host:a\x00b", "model.weights=w\x00.h5"])
def test_a_nul_byte_in_a_path_names_the_field(override):
    """A NUL byte in a host path (found by the property tests) is refused, naming the field."""
    (p,) = _refused(GOOD, overrides=[override])
    assert p.field.startswith(override.split("=")[0]) and "control characters" in p.message
