"""Experiment specs: the paper spec validates; each kind of bad input names field and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import SpecError
from orchestrator.spec import load_spec, load_spec_text

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "experiments" / "paper_table1.yaml"

GOOD = """\
name: demo
model: {arch: mobilenet_v1, alpha: 0.25, input_size: 96, weights: none}
head: {dropout: 0.2, classes: [cat, dog]}
data: {source: "host:imgs", train_per_class: 4, test_per_class: 4, seed: 0}
training:
  batch_size: 4
  head_epochs: 1
  finetune_epochs: 1
variants:
  method1: {finetune_from: null}
  method2: {finetune_from: B}
"""


def _problems(text: str, tmp_path: Path, overrides=()) -> list:
    with pytest.raises(SpecError) as err:
        load_spec_text(text, base_dir=tmp_path, overrides=list(overrides))
    return err.value.problems


@pytest.fixture
def imgs(tmp_path):
    (tmp_path / "imgs").mkdir()
    return tmp_path


def test_paper_spec_is_valid():
    """The shipped paper spec reproduces the paper's setup."""
    spec = load_spec(PAPER)
    assert spec.model.alpha == 1.0 and spec.model.input_size == 160
    assert spec.model.weights == "imagenet"
    assert (spec.data.train_per_class, spec.data.test_per_class) == (100, 500)
    assert spec.training.batch_size == 4
    assert (spec.training.head_epochs, spec.training.finetune_epochs) == (10, 10)
    assert spec.variants["method1"].finetune_from is None
    assert spec.variants["method2"].finetune_from == "conv_pw_11"  # layer B


@pytest.mark.parametrize("name, layer", [("A", "conv1"), ("B", "conv_pw_11"),
                                         ("conv1", "conv1"), ("conv_pw_7", "conv_pw_7")])
def test_paper_aliases_name_the_rows_of_its_mobilenet_table(imgs, name, layer):
    """A is the table's first row (conv1: nothing frozen), B its 512×512 pointwise row."""
    spec = load_spec_text(GOOD.replace("finetune_from: B", f"finetune_from: {name}"),
                          base_dir=imgs)
    assert spec.variants["method2"].finetune_from == layer


def test_relative_host_path_is_relative_to_the_spec_file(imgs):
    """host: paths in a file resolve against that file's folder."""
    spec = load_spec_text(GOOD, base_dir=imgs)
    assert spec.data.path == str((imgs / "imgs").resolve())


def test_override_path_is_relative_to_cwd(imgs, monkeypatch, tmp_path):
    """--set paths resolve against the current folder."""
    other = tmp_path / "elsewhere" / "set"
    other.mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "elsewhere")
    spec = load_spec_text(GOOD, base_dir=imgs, overrides=["data.source=host:set"])
    assert spec.data.path == str(other.resolve())


@pytest.mark.parametrize(
    "mutate, field, line, words",
    [
        (lambda t: t.replace("head: {", "haed: {"), "haed", 3, "unknown key"),
        (lambda t: t.replace("batch_size: 4", "batch_size: four"), "training.batch_size", 6,
         "integer"),
        (lambda t: t.replace("head_epochs: 1", "head_epochs: -2"), "training.head_epochs", 7,
         "≥ 0"),
        (lambda t: t.replace("finetune_from: B", "finetune_from: conv_pw_99"),
         "variants.method2.finetune_from", 11, "conv_pw_99"),
        (lambda t: t.replace("host:imgs", "host:missing"), "data.source", 4, "does not exist"),
        (lambda t: t.replace("host:imgs", "ftp:imgs"), "data.source", 4, "host:PATH"),
        (lambda t: t.replace("alpha: 0.25", "alpha: 0.3"), "model.alpha", 2, "0.25"),
        (lambda t: t.replace("seed: 0}", "seed: 0, decode: lossy}"), "data.decode", 4,
         "'fast' or 'exact'"),
        (lambda t: t.replace("seed: 0}", "seed: 0, max_pixels: 0}"), "data.max_pixels", 4,
         "≥ 1"),
    ],
)
def test_bad_field_is_named_with_its_line(imgs, mutate, field, line, words):
    """Each problem names its field, its line in the file, and what is wrong."""
    problems = _problems(mutate(GOOD), imgs)
    match = [p for p in problems if p.field == field]
    assert match, problems
    assert match[0].line == line
    assert words in match[0].message


def test_empty_and_non_yaml_files(imgs):
    """An empty file and a non-YAML file are refused with one clear problem."""
    assert "empty" in _problems("", imgs)[0].message
    assert "not valid YAML" in _problems("name: [unclosed\n  x: : :", imgs)[0].message
    assert "mapping" in _problems("- just\n- a list\n", imgs)[0].message


def test_set_override_is_validated_like_the_file(imgs):
    """--set training.batch_size=0 is refused with the same rule, marked as from --set."""
    problems = _problems(GOOD, imgs, ["training.batch_size=0"])
    assert str(problems[0]) == "training.batch_size (from --set): must be ≥ 1, got 0"


def test_unknown_variant(imgs):
    """Asking for a variant the spec lacks lists the ones it has."""
    spec = load_spec_text(GOOD, base_dir=imgs)
    with pytest.raises(SpecError, match="method1, method2"):
        spec.variant_names("method3")


def test_imagenet_weights_need_a_keras_size(imgs):
    """ImageNet weights exist for 128/160/192/224 only."""
    problems = _problems(GOOD.replace("weights: none", "weights: imagenet"), imgs)
    assert "input_size 96" in problems[0].message
