"""routing.training on messages written for these tests (no data folder needed)."""

from __future__ import annotations

import numpy as np

from routing.classifier import Classifier, FeatureConfig
from routing.training import Example, TrainOptions, expected_calibration_error, review_threshold, train

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
