"""Small parts of the agent: event numbering, checkpoints, batching, dropout, redaction."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from device_agent import checkpoint, contract
from device_agent.errors import redact
from device_agent.events import EventLog, last_seq
from device_agent.training import dropout_mask, evaluate, padded, train_epoch, training_rng
from device_agent.trunk import compact

REPO = Path(__file__).resolve().parents[1]


def test_events_continue_numbering_and_survive_a_torn_line(tmp_path):
    """A second log on the same file continues seq; a half-written last line is skipped."""
    path = tmp_path / "events.jsonl"
    out = io.StringIO()
    log = EventLog(str(path), out)
    log.emit("start", pid=1)
    log.emit("log", message="x")
    log.close()
    with open(path, "a") as f:
        f.write('{"seq": 3, "t": 1, "ki')  # killed mid-write
    assert last_seq(str(path)) == (2, True)
    log = EventLog(str(path), out)
    ev = log.emit("epoch", train_loss=float("nan"), test_acc=np.float32(0.5))
    log.close()
    assert ev["seq"] == 3 and ev["train_loss"] is None and ev["test_acc"] == 0.5
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1])["seq"] == 3  # on its own line after the torn one
    assert [json.loads(x)["seq"] for x in out.getvalue().splitlines()] == [1, 2, 3]


def test_events_keep_writing_the_file_when_stdout_is_gone(tmp_path):
    """When the host's link (stdout) breaks, events still go to events.jsonl."""
    out = io.StringIO()
    log = EventLog(str(tmp_path / "e.jsonl"), out)
    out.close()
    log.emit("log", message="still here")
    log.close()
    assert "still here" in (tmp_path / "e.jsonl").read_text()


def test_checkpoint_round_trip(tmp_path):
    """State tensors and the record come back exactly; no temp file is left behind."""
    state = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "adam_step": np.float32(3)}
    rng = training_rng(1)
    rng.random(5)
    record = {"epoch": 2, "rng": rng.bit_generator.state, "epochs": [{"phase": "head"}]}
    checkpoint.save(str(tmp_path), state, record)
    loaded, rec = checkpoint.load(str(tmp_path))
    assert rec == json.loads(json.dumps(record))
    np.testing.assert_array_equal(loaded["w"], state["w"])
    again = training_rng(0)
    again.bit_generator.state = rec["rng"]
    assert again.random() == rng.random()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.npz"]
    assert checkpoint.load(str(tmp_path / "none")) is None


def test_dropout_mask_is_inverted_and_seeded():
    """Kept units are 1/(1-rate), the kept share is about 1-rate, the same seed repeats."""
    m = dropout_mask(training_rng(0), 64, 128, 0.25)
    assert set(np.unique(m)) == {0.0, np.float32(1 / 0.75)}
    assert abs((m > 0).mean() - 0.75) < 0.02
    np.testing.assert_array_equal(m, dropout_mask(training_rng(0), 64, 128, 0.25))
    assert np.all(dropout_mask(training_rng(0), 2, 3, 0.0) == 1)


def test_train_epoch_pads_the_short_batch_with_zero_weights():
    """Every row is seen once per epoch; the padded rows of the last batch weigh 0."""
    x = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    y = np.arange(10, dtype=np.int32) % 2
    seen, weights = [], []

    def step(xb, yb, wb, mask, lr):
        assert xb.shape == (4, 3) and mask.shape == (4, 5) and lr == 0.1
        seen.extend(xb[wb > 0, 0].tolist())
        weights.append(wb.tolist())
        return 1.0

    loss = train_epoch(step, x, y, rng=training_rng(0), batch=4, dim=5, rate=0.5, lr=0.1)
    assert loss == 1.0 and sorted(seen) == list(range(10))
    assert weights[-1] == [1.0, 1.0, 0.0, 0.0]
    assert train_epoch(step, x, y, rng=training_rng(0), batch=4, dim=5, rate=0.5, lr=0.1,
                       should_stop=lambda: True) is None


def test_evaluate_drops_padding_and_scores_per_class():
    """Loss, accuracy and per-class accuracy from probabilities, padding rows discarded."""
    y = np.array([0, 0, 1, 1, 1], dtype=np.int32)
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.4, 0.6], [0.6, 0.4]], np.float32)
    calls = []

    def fn(xb):
        calls.append(len(xb))
        return padded(probs[xb[:, 0].astype(int)], 4)

    x = np.arange(5, dtype=np.float32)[:, None]
    ev = evaluate(fn, x, y, batch=4, num_classes=2)
    assert calls == [4, 4]
    assert ev.accuracy == pytest.approx(3 / 5)
    assert ev.per_class == pytest.approx([0.5, 2 / 3])
    expect = -np.mean(np.log([0.9, 0.2, 0.7, 0.6, 0.4]))
    assert ev.loss == pytest.approx(expect, rel=1e-6)


def test_redact_removes_paths_and_image_names_but_not_system_libraries():
    """Messages bound for the host lose user paths and image names, keep /system/ paths."""
    text = ("cannot identify image file '/sdcard/DCIM/Camera/IMG_2041.jpg'; also "
            "holiday.HEIC failed; dlopen /system/lib64/libneuralnetworks.so: lr 1e-3\nnext")
    out = redact(text)
    assert "IMG_2041" not in out and "DCIM" not in out and "holiday" not in out
    assert "/system/lib64/libneuralnetworks.so" in out and "lr 1e-3 next" in out


def test_compact_keeps_delegate_info_within_two_levels():
    """Nested NNAPI diagnostics are flattened so the egress guard's depth limit holds."""
    info = {"device": "qti-dsp", "devices": [{"name": "qti-dsp", "ops": [1, 2]},
                                            {"name": "nnapi-reference"}],
            "guard": {"ok": True, "shape": {"nnapi": [1, 2]}}}
    out = compact(info)
    assert out["devices"] == ["qti-dsp", "nnapi-reference"]
    assert out["guard"]["ok"] is True and isinstance(out["guard"]["shape"], str)


def test_peak_memory_is_the_agents_own_not_its_launchers():
    """A launcher that held 400 MB before exec'ing the agent does not raise the agent's
    reported peak memory (ru_maxrss would carry it over; VmHWM does not)."""
    import subprocess
    import sys

    if not os.path.exists("/proc/self/status"):
        pytest.skip("no /proc on this system")
    code = ("import os, sys; big = bytearray(400 * 2**20); big[::4096] = b'x' * len(big[::4096]);"
            " os.execv(sys.executable, [sys.executable, '-c', 'from device_agent.result import "
            "peak_memory_mb; print(peak_memory_mb())'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert 0 < float(out.stdout) < 200


# --- delegation: what a delegate took, from the runtime's own log -------------------------


def test_node_counts_read_every_subgraph_of_a_tflite_file(tmp_path):
    """The flatbuffer reader counts each subgraph's operators as the schema reader does."""
    tf = pytest.importorskip("tensorflow")
    from device_agent.delegation import node_counts
    from models.tflite_info import describe

    class Two(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([2, 3], tf.float32, name="x")])
        def one(self, x):
            return {"y": tf.nn.relu(x) * 2.0 + 1.0}

        @tf.function(input_signature=[tf.TensorSpec([2, 3], tf.float32, name="x")])
        def two(self, x):
            return {"y": x - 1.0}

    m = Two()
    tf.saved_model.save(m, str(tmp_path / "sm"), signatures={"one": m.one, "two": m.two})
    path = tmp_path / "two.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_saved_model(
        str(tmp_path / "sm"), signature_keys=["one", "two"]).convert())

    counts = node_counts(str(path))

    assert len(counts) == 2 and min(counts) >= 1
    assert sum(counts) == sum(describe(path)["ops"].values())


def test_summarize_adds_the_logged_partitions_of_every_subgraph(tmp_path):
    """Each "Replacing N out of M" line counts; no line means no delegate took anything."""
    from device_agent.delegation import summarize

    lines = ["INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
             "VERBOSE: Replacing 30 out of 32 node(s) with delegate (TfLiteXNNPackDelegate) "
             "node, yielding 5 partitions for subgraph 0.",
             "VERBOSE: Replacing 8 out of 8 node(s) with delegate (TfLiteXNNPackDelegate) "
             "node, yielding 1 partitions for subgraph 2."]
    missing = str(tmp_path / "absent.tflite")

    took = summarize(missing, lines, None)
    none = summarize(missing, lines[:1], None)

    assert (took["delegate"], took["delegated_nodes"]) == ("xnnpack", 38)
    assert (none["delegate"], none["delegated_nodes"]) == ("none", 0)


def test_event_tables_must_name_the_contracts_kinds():
    """A per-kind table with an unknown kind, or a complete one missing a kind, is refused."""
    every = dict.fromkeys(contract.EVENT_KINDS, 0)
    assert contract.event_table(every) == every
    assert contract.event_table({"epoch": 1}, every=False) == {"epoch": 1}
    with pytest.raises(ValueError, match="missing kinds \\['stage'\\]"):
        contract.event_table({k: 0 for k in contract.EVENT_KINDS if k != "stage"})
    with pytest.raises(ValueError, match="unknown kinds \\['log'\\]"):
        contract.event_table({"log": 0}, every=False)


def test_head_only_builds_plan_no_fine_tune_epochs():
    """Method 1 (no layers above the split) plans its head epochs only; method 2 both."""
    assert contract.planned_epochs(5, 10, has_finetune=False) == {"head": 5, "finetune": 0}
    assert contract.planned_epochs(5, 10, has_finetune=True) == {"head": 5, "finetune": 10}
