"""The run record (mnist_audit.runs): recipe kinds, labels, the confusion matrix's
orientation and the training side's time to the target."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import needs_mnist

from mnist_audit import runs
from mnist_audit.runs import RunRecord


def _record(**m):
    base = {"arch": "thomas", "variant": "default", "seed": 0, "budget_scale": 1.0, "train_subset": None,
            "eval_subset": None, "overrides": {}}
    base.update(m)
    base.update(runs.budget_flags(base["budget_scale"], base["train_subset"], base["eval_subset"], base["overrides"]))
    return RunRecord(base)


@pytest.mark.parametrize(("changes", "kind", "published"), [
    ({}, "published", True),
    ({"overrides": {"learning_rate": 0.01}}, "overridden", False),
    ({"budget_scale": 0.1}, "scaled", False),
    ({"train_subset": 500}, "scaled", False),  # a subset at the full budget is still not the recipe
    ({"eval_subset": 500}, "scaled", False),
    ({"budget_scale": 0.1, "overrides": {"epochs": 2}}, "overridden, scaled", False),
])
def test_recipe_kind_is_decided_once(changes, kind, published):
    r = _record(**changes)
    assert (r.recipe_kind, r.published, r.scaled) == (kind, published, kind.endswith("scaled"))


def test_a_record_older_than_full_budget_is_read_the_same(tmp_path):
    m = dict(_record(train_subset=500).metrics)
    del m["full_budget"]
    (tmp_path / "metrics.json").write_text(json.dumps(m))
    r = RunRecord.read(tmp_path)
    assert r.scaled and r.recipe_kind == "scaled" and r.path == tmp_path / "metrics.json"


def test_one_label_spelling():
    assert runs.label("thomas", "default") == "thomas"
    assert runs.label("cnn_tutorial", "printed") == _record(arch="cnn_tutorial", variant="printed").label \
        == "cnn_tutorial:printed"


def test_confusion_matrix_rows_are_true_labels():
    cm = runs.confusion_matrix(np.array([0, 0, 0, 1]), np.array([1, 1, 0, 1]))
    assert cm[0, 1] == 2 and cm[1, 0] == 0 and cm[0, 0] == 1 and cm[1, 1] == 1
    table = runs.confusion_table(cm)
    assert list(table.columns[:3]) == ["true", "pred_0", "pred_1"]
    assert table.loc[0, "pred_1"] == 2  # row: the true class; column: the predicted one


@pytest.mark.slow
@needs_mnist
def test_confusion_csv_of_a_real_run_has_the_true_labels_as_rows(tiny_run, split_path):
    """Row sums are the test set's class counts (column sums would be the predictions')."""
    work, _ = tiny_run
    run = work / "results" / "runs" / "thomas" / "default" / "seed0"
    m = json.loads((run / "metrics.json").read_text())
    y = np.load(split_path)["y_test"][: m["n_test"]]
    table = pd.read_csv(run / "confusion.csv").set_index("true")
    pred = runs.read_predictions(run / "predictions.npz")["test_pred"]
    assert table.sum(axis=1).tolist() == np.bincount(y, minlength=10).tolist()
    assert table.sum(axis=0).tolist() == np.bincount(pred, minlength=10).tolist()
    assert not np.array_equal(np.bincount(y, minlength=10), np.bincount(pred, minlength=10))  # the test can tell
    assert np.trace(table.to_numpy()) / m["n_test"] == pytest.approx(m["test_accuracy_predict"])


def _history(accs, train_s=10.0, eval_s=1.0):
    rows, wall = [], 0.0
    for i, a in enumerate(accs):
        wall += train_s + eval_s
        rows.append({"epoch": i + 1, "steps": 100 * (i + 1), "train_seconds": train_s + (5.0 if i == 0 else 0.0),
                     "eval_seconds": eval_s, "wall_seconds": wall, "test_accuracy": a})
    return rows


def test_time_to_target_is_the_first_epoch_at_the_bound():
    t = runs.timing_summary(_history([0.97, 0.985, 0.984, 0.99]), batch_size=50, steps_per_epoch=100,
                            eval_images=1000, target=0.985)
    assert (t["time_to_target_epoch"], t["time_to_target_seconds"], t["target_reached"]) == (2, 22.0, True)
    assert t["first_epoch_overhead_seconds"] == pytest.approx(5.0) and t["steady_state_measured"]
    assert t["train_images_per_second"] == pytest.approx(300 * 50 / 30.0)
    never = runs.timing_summary(_history([0.9, 0.91]), 50, 100, 1000, target=0.985)
    assert (never["time_to_target_epoch"], never["target_reached"]) == (None, False)
    none = runs.timing_summary(_history([0.9]), 50, 100, 1000, target=None)
    assert none["target_reached"] is None and not none["steady_state_measured"]
