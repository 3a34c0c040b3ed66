"""routing.classifier: the shipped model, on complaints written for these tests (no real messages)."""

from __future__ import annotations

import json
import math
import random
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.utils import murmurhash3_32

from routing.classifier import Classifier, FeatureConfig, Prediction, default_model_path
from routing.training import Example, count_blocks, fit_idf, tfidf

# The platform's 15 first-level categories (taxonomy.csv): labels, not message text.
FIRST_LEVEL = {
    "城乡建设", "党务政务", "国土资源", "环境保护", "纪检监察", "交通运输", "经济管理", "科技与信息产业",
    "民政", "农村农业", "商贸旅游", "卫生计生", "政法", "教育文体", "劳动和社会保障",
}  # fmt: skip

SYNTHETIC = [
    ("出租车司机拒载还绕路，要求交通部门查处", "交通运输"),
    ("网约车平台乱收费，司机态度恶劣", "交通运输"),
    ("高速公路收费站ETC扣费错误，多扣了两次", "交通运输"),
    ("学校暑假违规补课，每人收费两千元", "教育文体"),
    ("孩子上小学入学难，学位不够", "教育文体"),
    ("公司不给员工缴纳社保，也不签劳动合同", "劳动和社会保障"),
    ("单位拖欠工资三个月，农民工讨薪无门", "劳动和社会保障"),
    ("医院乱收费，医生态度很差", "卫生计生"),
    ("工厂夜间偷排废气，气味刺鼻", "环境保护"),
    ("附近工地夜间施工噪音扰民到凌晨", "环境保护"),
    ("开发商延期交房一年，房产证也办不下来", "城乡建设"),
    ("小区物业乱收停车费，业主委员会不作为", "城乡建设"),
    ("商家办了预付卡后关门跑路，消费者无法退费", "商贸旅游"),
    ("超市销售过期食品，希望市场监管部门查处", "商贸旅游"),
]


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier.load(default_model_path())


def test_the_shipped_model_loads_with_the_seven_labelled_classes(clf):
    assert default_model_path().is_file()
    assert len(clf.classes) == 7 and set(clf.classes) <= FIRST_LEVEL
    assert len(clf.version) == 12 and int(clf.version, 16) >= 0
    assert 0 < clf.review_below < 1 and clf.temperature > 0


def test_the_shipped_model_is_small(clf):
    assert default_model_path().stat().st_size <= 20 * 1024 * 1024


@pytest.mark.parametrize("text, label", SYNTHETIC)
def test_it_predicts_a_plausible_category(clf, text, label):
    p = clf.predict(text)
    assert isinstance(p, Prediction)
    assert p.label == label, (text, p.top3)


def test_a_bus_complaint_lands_in_transport_or_urban_construction(clf):
    # In this platform's taxonomy 公共汽车 and 地铁城铁 sit under 城乡建设 > 城市建设和市政管理,
    # and the labelled messages about buses mostly say 城乡建设: both are right answers.
    p = clf.predict("公交车司机开车时打电话，还不按站停车")
    assert {c for c, _ in p.top3[:2]} & {"交通运输", "城乡建设"}


def test_probabilities_sum_to_one_and_top3_is_ordered(clf):
    for text, _ in SYNTHETIC:
        p = clf.predict(text)
        assert math.isclose(sum(p.probabilities.values()), 1.0, rel_tol=1e-6)
        probs = [v for _, v in p.top3]
        assert len(p.top3) == 3 and probs == sorted(probs, reverse=True)
        assert p.top3[0][0] == p.label
        assert p.confidence == pytest.approx(p.top3[0][1])
        assert p.needs_review == (p.confidence < clf.review_below)
        assert p.version == clf.version


def test_title_and_text_are_read_together(clf):
    p = clf.predict("最近一直这样，希望尽快处理。", title="学校违规补课收费")
    assert p.label == "教育文体"


def test_top_words_come_from_the_input(clf):
    text = "学校暑假违规补课，每人收费两千元"
    p = clf.predict(text)
    assert set(p.top_words) == {c for c, _ in p.top3}
    assert p.top_words[p.label], "the winning class should have at least one supporting word"
    for words in p.top_words.values():
        for w in words:
            assert w in text
    assert "违规补课" in p.top_words["教育文体"]


@pytest.mark.parametrize("text", ["", "   \n\t", "😀😀😀🙏🙏", "！！？？……", "1234567", None])
def test_text_without_any_feature_gets_zero_confidence(clf, text):
    p = clf.predict(text)  # type: ignore[arg-type]
    assert p.label in clf.classes
    assert p.confidence == 0.0 and p.needs_review
    assert math.isclose(sum(p.probabilities.values()), 1.0, rel_tol=1e-6)


def test_a_50000_character_message_is_read_partly_and_does_not_crash(clf):
    rng = random.Random(7)
    filler = "".join(
        rng.choice("的一是了我不人在他有这个上们来到时大地为子中你说生国年着就那和要她出也得里后自以会")
        for _ in range(50_000)
    )
    p = clf.predict("医院乱收费，医生态度很差。" + filler)
    assert p.label in clf.classes and 0.0 <= p.confidence <= 1.0
    junk = clf.predict("x" * 50_000)
    assert junk.needs_review


def test_gibberish_gets_low_confidence(clf):
    p = clf.predict("啊哦嗯呃哈嘿")
    assert p.needs_review


def test_predict_is_safe_from_many_threads(clf):
    texts = [t for t, _ in SYNTHETIC] * 4
    with ThreadPoolExecutor(max_workers=4) as pool:
        labels = list(pool.map(lambda t: clf.predict(t).label, texts))
    assert labels == [clf.predict(t).label for t in texts]


# ---- the model file holds no text --------------------------------------------------------


def test_the_model_file_holds_numbers_class_names_and_an_ascii_config_only():
    path = default_model_path()
    with zipfile.ZipFile(path) as zf:
        members = sorted(zf.namelist())
    assert members == sorted(
        f"{n}.npy" for n in ("classes", "coef", "intercept", "idf_word", "idf_char", "idf_head", "config")
    )
    with np.load(path, allow_pickle=False) as z:
        for name in ("coef", "intercept", "idf_word", "idf_char", "idf_head"):
            assert z[name].dtype.kind == "f", name  # numbers cannot spell words
        assert set(z["classes"].tolist()) <= FIRST_LEVEL
        config = str(z["config"])
    assert config.isascii()
    strings: list[str] = []

    def walk(v):
        if isinstance(v, str):
            strings.append(v)
        elif isinstance(v, dict):
            for k, x in v.items():
                strings.append(k)
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(json.loads(config))
    assert all(s.isascii() for s in strings)


def test_no_cjk_text_outside_the_class_names():
    """Scan every member's decompressed bytes for CJK text in UTF-8 and in numpy's UTF-32."""
    path = default_model_path()
    with np.load(path, allow_pickle=False) as z:
        allowed = {c.encode("utf-32-le") for c in z["classes"].tolist()}
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            data = zf.read(name)
            if name == "classes.npy":
                for c in allowed:
                    data = data.replace(c, b"")
            if name in ("classes.npy", "config.npy"):
                # string arrays are UTF-32: look for any code point in the CJK blocks
                body = data[data.index(b"\n") + 1 :]
                cps = np.frombuffer(body[: len(body) // 4 * 4], dtype="<u4")
                assert not ((cps >= 0x3400) & (cps <= 0x9FFF)).any(), name
                assert not ((cps >= 0x20000) & (cps <= 0x2FFFF)).any(), name
            else:
                assert data[:6] == b"\x93NUMPY", name
                header = data[10 : data.index(b"\n") + 1]  # after the magic, version and length
                assert header.isascii() and "'<f" in header.decode(), name


# ---- the serving path matches training ----------------------------------------------------


def test_serving_hash_columns_match_the_training_hashing_vectorizer():
    rng = random.Random(3)
    alphabet = "物业噪音扰民公交学校补课社保医院abcXYZ019😀，。 "
    strings = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))) for _ in range(400)]
    for n in (2**17, 2**18, 2**19):
        hv = HashingVectorizer(analyzer=lambda x: x, n_features=n, alternate_sign=False, norm=None)
        expected = [hv.transform([[s]]).indices[0] for s in strings]
        got = [abs(murmurhash3_32(s)) % n for s in strings]
        assert got == expected
    assert abs(-(2**31)) % 2**19 == (2**31 - 1 - (2**19 - 1)) % 2**19  # FeatureHasher's special case


def _tiny_model(rng: np.random.Generator) -> Classifier:
    cfg = FeatureConfig(n_word=2**10, n_char=2**11, n_head=2**9, weights=(1.0, 1.3, 0.8))
    examples = [Example(str(i), "x", str(i), text=t) for i, (t, _) in enumerate(SYNTHETIC)]
    blocks = count_blocks(examples, cfg)
    idf = [fit_idf(b) for b in blocks]
    coef = rng.normal(size=(sum(cfg.sizes), 3)).astype(np.float32)
    return Classifier(
        classes=["甲", "乙", "丙"], coef=coef, intercept=np.zeros(3), idf=idf, temperature=0.5, cfg=cfg
    ), blocks


def test_serving_scores_equal_the_training_matrix_scores():
    clf, blocks = _tiny_model(np.random.default_rng(0))
    X = tfidf(blocks, clf.idf, clf.cfg)
    expected = X @ clf.coef + clf.intercept
    got = np.array([clf.scores(t) for t, _ in SYNTHETIC])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_save_and_load_round_trip(tmp_path):
    clf, _ = _tiny_model(np.random.default_rng(1))
    version = clf.save(tmp_path / "m.npz")
    back = Classifier.load(tmp_path / "m.npz")
    assert back.version == version and back.classes == clf.classes and back.cfg == clf.cfg
    for t, _ in SYNTHETIC[:5]:
        a, b = clf.predict(t), back.predict(t)
        assert a.label == b.label
        assert a.confidence == pytest.approx(b.confidence, abs=2e-3)  # float16 storage


def test_loading_a_file_of_another_format_fails_clearly(tmp_path):
    clf, _ = _tiny_model(np.random.default_rng(2))
    clf.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    cfg = json.loads(str(arrays["config"]))
    cfg["format"] = 99
    arrays["config"] = np.array(json.dumps(cfg))
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match="unsupported model format"):
        Classifier.load(tmp_path / "bad.npz")
