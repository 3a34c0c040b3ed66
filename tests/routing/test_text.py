"""routing.text: normalisation, redaction of personal data, tokens. All inputs are written for these tests."""

from __future__ import annotations

import threading

import pytest

from routing import text as T

# ---- normalize ---------------------------------------------------------------------------


def test_it_folds_full_width_letters_digits_and_punctuation():
    assert T.normalize("ＡＢＣ１２３，ＯＫ！") == "abc123,ok!"


def test_it_collapses_whitespace_and_drops_invisible_characters():
    assert T.normalize("  小区\u3000\u3000路灯\n\n不亮\u200b了\t ") == "小区 路灯 不亮了"


def test_empty_and_none_like_input_normalise_to_empty():
    assert T.normalize("") == ""
    assert T.normalize("   \n") == ""
    assert T.normalize(None) == ""  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "phone",
    ["13812345678", "１３８１２３４５６７８", "+86 138-1234-5678", "86-13812345678", "138 1234 5678"],
)
def test_it_removes_mobile_numbers_inside_text(phone):
    out = T.normalize(f"我家楼下餐馆油烟很大，请联系我{phone}谢谢")
    assert "1234" not in out and "5678" not in out
    assert out.startswith("我家楼下餐馆油烟很大") and out.endswith("谢谢")


@pytest.mark.parametrize("landline", ["0731-84123456", "0731 8412 3456", "07318412345"])
def test_it_removes_landlines_with_area_code(landline):
    assert "8412" not in T.normalize(f"座机{landline}，白天有人")


def test_it_removes_local_numbers_after_a_cue_word():
    assert T.normalize("电话：84123456") == "电话:"


@pytest.mark.parametrize(
    "idno", ["43010219900307123X", "43010219900307123x", "430102199003071234", "430102900307123"]
)
def test_it_removes_id_card_numbers(idno):
    out = T.normalize(f"身份证号{idno}，办理社保卡时被告知号码有误")
    assert "430102" not in out
    assert "身份证号" in out and "社保卡" in out


def test_it_removes_email_and_qq_numbers():
    out = T.normalize("邮箱 Zhang.San_01@example.com.cn，ＱＱ：１２３４５６７８９，加我")
    assert "example" not in out and "zhang" not in out
    assert "123456789" not in out and "qq" not in out


def test_it_removes_long_numbers_but_keeps_dates_and_small_numbers():
    out = T.normalize("2019年3月5日起，3栋2单元的水表卡号6222020200112233445一直没人抄")
    assert "2019年3月5日" in out and "3栋2单元" in out
    assert "6222" not in out


@pytest.mark.parametrize(
    "sentence, name",
    [
        ("王先生反映小区路灯不亮", "王"),
        ("欧女士来电咨询医保报销", "欧"),
        ("我叫李小明，住在岳麓区", "李小明"),
        ("联系人：刘芳，电话另告", "刘芳"),
    ],
)
def test_it_removes_names_where_it_can_see_them(sentence, name):
    out = T.normalize(sentence)
    assert name not in out
    assert any(cue in out for cue in ("先生", "女士", "我叫", "联系人"))


# ---- tokens ----------------------------------------------------------------------------


def test_tokens_keep_content_words_and_drop_stop_words_punctuation_and_numbers():
    toks = T.tokens("我们小区的物业公司乱收停车费！！已经3个月了，2019年就开始了")
    assert "物业公司" in toks and "停车费" in toks
    for noise in ("我们", "的", "！", "3", "2019", "了", ","):
        assert noise not in toks


def test_tokens_drop_the_masked_place_codes_of_the_training_data():
    toks = T.tokens("Ａ３区某小区门口占道经营")
    assert "a3" not in toks and "占道经营" in toks


def test_hotline_terms_stay_whole():
    assert "违规补课" in T.tokens("学校暑假违规补课")
    assert "网约车" in T.tokens("网约车司机绕路")


def test_tokens_can_be_capped():
    long = "噪音扰民" * 100
    assert len(T.tokens(long, max_chars=40)) <= 10


def test_tokens_of_empty_or_symbol_only_text_are_empty():
    assert T.tokens("") == []
    assert T.tokens("😀😀！！？？……") == []


def test_cut_gives_the_same_tokens_as_jieba_without_hmm():
    tk = T.tokenizer()
    for s in [
        "投诉a3区某小区物业违规收取停车费,业主委员会不作为",
        "市民反映公交车司机拒载,希望交通局处理abc123 wifi信号差",
        "学校补课收费每人500元,家长敢怒不敢言。。。",
        "",
        "a b  c\r\n换行",
    ]:
        assert T.cut(s, normalized=True) == tk.lcut(s, HMM=False)


# ---- the shared tokenizer ---------------------------------------------------------------


@pytest.fixture
def fresh_tokenizer(monkeypatch):
    """Start from an uninitialised tokenizer and count how often one gets built."""
    built = []
    real_build = T._build

    def counting_build(words):
        built.append(tuple(words))
        return real_build(words)

    monkeypatch.setattr(T, "_build", counting_build)
    monkeypatch.setattr(T, "_tokenizer", None)
    return built


def test_the_tokenizer_is_built_once_even_when_many_threads_ask_at_once(fresh_tokenizer):
    results: list[list[str]] = []
    barrier = threading.Barrier(6)

    def work():
        barrier.wait()
        results.append(T.tokens("小区电梯经常坏，物业不修"))

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fresh_tokenizer) == 1
    assert len(results) == 6 and all(r == results[0] for r in results)


def test_configure_adds_gazetteer_words_to_the_dictionary(monkeypatch):
    word = "橘洲桥头街道"
    assert word not in T.tokens(f"{word}路灯坏了")
    try:
        T.configure([word, "", "x"])
        assert word in T.tokens(f"{word}路灯坏了")
    finally:
        T.configure(())
    assert word not in T.tokens(f"{word}路灯坏了")


def test_gazetteer_words_reads_counties_and_streets_under_a_region(tmp_path):
    (tmp_path / "areas.csv").write_text(
        'code,name,cityCode,provinceCode\n430104,"甲乙区",4301,43\n110101,"丙丁区",1101,11\n',
        encoding="utf-8",
    )
    (tmp_path / "streets.csv").write_text(
        'code,name,areaCode,provinceCode,cityCode\n430104001,"戊己街道",430104,43,4301\n'
        '430104002,"庚镇",430104,43,4301\n',
        encoding="utf-8",
    )
    words = T.gazetteer_words(tmp_path, "43")
    assert {"甲乙区", "甲乙", "戊己街道", "戊己", "庚镇"} <= set(words)
    assert "丙丁区" not in words
    assert "庚" not in words  # a one-character stem is no word
    assert T.gazetteer_words(tmp_path / "missing", "43") == []
