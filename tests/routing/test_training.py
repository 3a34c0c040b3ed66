"""routing.training on messages written for these tests (no data folder needed)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import RidgeClassifier
from sklearn.svm import LinearSVC

from routing.classifier import Classifier, FeatureConfig
from routing.training import (
    Example,
    TrainOptions,
    count_blocks,
    expected_calibration_error,
    fit_idf,
    fit_model,
    log_count_ratios,
    review_threshold,
    score_spread,
    tfidf,
    train,
)

TOPICS = {
    "教育文体": ["学校补课收费", "幼儿园学位不够", "老师体罚学生", "中学放假安排不合理", "学校食堂饭菜差"],
    "环境保护": ["工厂排放废气", "工地噪音扰民", "河道污水直排", "养殖场臭气熏天", "夜间施工噪音"],
    "交通运输": ["出租车拒载", "网约车乱收费", "公路坑洼不平", "客运班车超载", "收费站排长队"],
}
SMALL = Example("rare", "卫生计生", "rare", text="医院乱收费，医生态度差")  # one example only


def _examples() -> list[Example]:
    out = []
    for label, topics in TOPICS.items():
        for i, topic in enumerate(topics):
            for j, tail in enumerate(["，希望尽快处理", "，多次反映无果", "，请相关部门管一管"]):
                key = f"{label}{i}{j}"
                if j == 2:  # some rows arrive pre-segmented, like labelled_segmented.csv
                    out.append(Example(key, label, f"{label}{i}", tokens=tuple(topic) + ("处理",)))
                else:
                    out.append(Example(key, label, f"{label}{i}", text=topic + tail))
    return [*out, SMALL]


def test_train_survives_a_class_missing_from_a_fold_and_gives_a_working_model(tmp_path):
    cfg = FeatureConfig(n_word=2**12, n_char=2**13, n_head=2**11)
    clf, cv, oof = train(_examples(), cfg, TrainOptions(folds=2), log=lambda *a: None)
    assert set(clf.classes) == {*TOPICS, "卫生计生"}
    assert oof.shape == (len(_examples()), 4)
    assert cv["full_text"]["n"] > 0 and 0 <= cv["full_text"]["macro_f1"] <= 1
    assert cv["calibration"]["temperature"] > 0
    clf.save(tmp_path / "m.npz")
    p = Classifier.load(tmp_path / "m.npz").predict("学校补课收费太高")
    assert p.label == "教育文体"


def test_review_threshold_is_the_lowest_confidence_that_keeps_the_target_precision():
    conf = np.array([0.99, 0.95, 0.9, 0.8, 0.7, 0.6])
    correct = np.array([True, True, True, False, True, False])
    # precision of the top 3, 4, 5, 6: 3/3, 3/4, 4/5, 4/6
    assert review_threshold(conf, correct, 0.8) == 0.7
    assert review_threshold(conf, correct, 0.81) == 0.9
    assert review_threshold(conf, correct, 1.0) == 0.9
    assert review_threshold(conf, np.zeros(6, bool), 0.5) == 1.0


def test_expected_calibration_error_is_zero_for_perfect_calibration():
    conf = np.array([1.0, 1.0, 0.5, 0.5])
    assert expected_calibration_error(conf, np.array([True, True, True, False])) == 0.0
    assert expected_calibration_error(np.array([0.9]), np.array([False])) == 0.9


# ---- the summed model ----------------------------------------------------------------------

CFG = FeatureConfig(n_word=2**12, n_char=2**13, n_head=2**11)


def _matrix(examples):
    blocks = count_blocks(examples, CFG)
    return tfidf(blocks, [fit_idf(b) for b in blocks], CFG)


def test_log_count_ratios_by_hand():
    X = sp.csr_matrix(np.array([[0.5, 0.0, 0.2], [0.3, 0.4, 0.0], [0.0, 0.7, 0.0]]))
    y = np.array(["a", "a", "b"])
    r = log_count_ratios(X, y, np.array(["a", "b"]), smoothing=1.0)
    # messages having each feature: class a (2, 1, 1) + 1 -> (3, 2, 2); class b (0, 1, 0) + 1 -> (1, 2, 1)
    p, q = np.array([3, 2, 2]) / 7, np.array([1, 2, 1]) / 4
    np.testing.assert_allclose(r[0], np.log(p / q))
    np.testing.assert_allclose(r[1], np.log(q / p))


def test_the_folded_weights_score_as_the_sum_of_the_three_scaled_models():
    examples = [e for e in _examples() if e.is_full]
    X, y = _matrix(examples), np.array([e.label for e in examples])
    opts = TrainOptions()
    model = fit_model(X, y, CFG, opts)
    classes = np.unique(y)
    assert list(model.classes) == list(classes) and model.coef.shape == (X.shape[1], len(classes))

    # the three members, fitted here directly with scikit-learn
    ridge = RidgeClassifier(alpha=opts.ridge_alpha, class_weight="balanced", solver="sparse_cg").fit(X, y)
    r = log_count_ratios(X, y, classes, opts.nb_smoothing)
    nb = np.column_stack(
        [
            LinearSVC(C=opts.C, class_weight="balanced", max_iter=5000)
            .fit(X @ sp.diags(r[k]), (y == c).astype(int))
            .decision_function(X @ sp.diags(r[k]))
            for k, c in enumerate(classes)
        ]
    )
    chars = slice(CFG.n_word, CFG.n_word + CFG.n_char)
    char_ridge = RidgeClassifier(alpha=opts.char_ridge_alpha, class_weight="balanced", solver="sparse_cg")
    char_ridge.fit(X[:, chars], y)
    members = [ridge.decision_function(X), nb, char_ridge.decision_function(X[:, chars])]
    expected = sum(s / score_spread(s) for s in members)
    np.testing.assert_allclose(model.scores(X), expected, rtol=1e-4, atol=1e-4)


def test_two_classes_give_two_opposite_score_columns():
    examples = [e for e in _examples() if e.label in ("教育文体", "环境保护")]
    X, y = _matrix(examples), np.array([e.label for e in examples])
    model = fit_model(X, y, CFG, TrainOptions())
    s = model.scores(X)
    assert s.shape == (len(examples), 2)
    # (the two NB-SVMs are fitted separately: opposite up to the solver's tolerance)
    np.testing.assert_allclose(s[:, 0], -s[:, 1], atol=1e-3)
    assert (model.classes[s.argmax(axis=1)] == y).mean() > 0.9


def test_score_spread_ignores_a_shift_shared_by_all_classes():
    s = np.array([[1.0, -1.0], [3.0, 1.0]])
    assert score_spread(s) == 1.0
    assert score_spread(np.zeros((3, 2))) == 1.0
