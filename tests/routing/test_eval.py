"""Training and evaluation entry points on the real messages, read from the data folder at test time.

Skipped, with the reason, when the data folder is absent: the messages are not shipped.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from routing import text as T
from routing import training
from routing.classifier import Classifier
from routing.training import TrainOptions, eval_main, load_labelled, train


@pytest.fixture(scope="module")
def examples(teddy_dir):
    return load_labelled(teddy_dir)


def _slice_csv(teddy_dir, dest, n: int, step: int = 23) -> None:
    with (teddy_dir / "teddy2020" / "labelled_train.csv").open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = [r for i, r in enumerate(reader) if i % step == 0][:n]
        fields = reader.fieldnames
    with dest.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=[*fields, "extra"])
        w.writeheader()
        for r in rows:
            w.writerow({**r, "extra": "ignored"})


def test_each_labelled_message_is_counted_once_with_the_full_text_preferred(teddy_dir, examples):
    full = [e for e in examples if e.is_full]
    seg = [e for e in examples if not e.is_full]
    with (teddy_dir / "teddy2020" / "labelled_segmented.csv").open(encoding="utf-8", newline="") as fh:
        seg_rows = list(csv.DictReader(fh))
    copies = sum(1 for r in seg_rows if r["train_id"])
    assert len(full) == 3074
    assert len(seg) == len(seg_rows) - copies
    assert len({e.id for e in examples}) == len(examples)


def test_eval_main_prints_the_figures_and_ends_with_one_json_line(teddy_dir, tmp_path, capsys):
    path = tmp_path / "slice.csv"
    _slice_csv(teddy_dir, path, 120)
    assert eval_main(None, path, as_json=True) == 0
    out = capsys.readouterr().out.strip().splitlines()
    m = json.loads(out[-1])
    for key in ("accuracy", "macro_f1", "top3_accuracy", "per_class", "confusion", "latency_ms"):
        assert key in m
    assert m["n"] == 120
    assert set(m["per_class"]) >= {"交通运输", "城乡建设"}
    # These messages were in the shipped model's training data: this checks the plumbing, not the model.
    assert m["accuracy"] > 0.8 and m["top3_accuracy"] > 0.9
    assert m["latency_ms"]["p50"] < 50
    assert any("macro-F1" in line for line in out[:-1])


def test_eval_main_without_json_prints_no_json(teddy_dir, tmp_path, capsys):
    path = tmp_path / "slice.csv"
    _slice_csv(teddy_dir, path, 20)
    assert eval_main(None, path, as_json=False) == 0
    out = capsys.readouterr().out
    assert "confusion" in out and "p99" in out and not out.strip().splitlines()[-1].startswith("{")


def test_fast_cut_matches_jieba_on_real_messages(examples):
    tk = T.tokenizer()
    for e in [e for e in examples if e.is_full][:300]:
        doc = T.normalize(e.text)
        assert T.cut(doc, normalized=True) == tk.lcut(doc, HMM=False)


def test_training_on_a_slice_gives_a_loadable_model(examples, tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(0)
    subset = [examples[i] for i in sorted(rng.choice(len(examples), 700, replace=False))]
    clf, cv, oof = train(subset, opts=TrainOptions(folds=2), log=lambda *a: None)
    assert oof.shape == (700, len(clf.classes))
    assert 0.5 < cv["full_text"]["macro_f1"] <= 1.0
    assert cv["calibration"]["temperature"] > 0

    # train_main end to end, on the same slice
    monkeypatch.setattr(training, "load_labelled", lambda data_dir: subset)
    out = tmp_path / "m.npz"
    summary = training.train_main(tmp_path, out, folds=2)
    assert out.is_file() and summary["version"] == Classifier.load(out).version
    assert "macro-F1" in capsys.readouterr().out
    p = Classifier.load(out).predict("学校暑假违规补课，每人收费两千元")
    assert p.label in clf.classes


def test_eval_main_reports_a_bad_csv(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,title,body\n1,a,b\n", encoding="utf-8")
    assert eval_main(None, bad) == 2
    assert "label" in capsys.readouterr().err
    assert eval_main(None, tmp_path / "missing.csv") == 2
