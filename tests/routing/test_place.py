"""属地 resolution: county and street/town from free text (routing.gazetteer, routing.place).

Every sentence here is written for the test; no citizen message is quoted. The evaluation on
restored Teddy messages runs only where the shared data folder exists.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from routing.gazetteer import Gazetteer, PlaceResult
from routing.place import _Restorer, build_place_testset, place_eval, place_eval_main, place_main

ROOT = Path(__file__).resolve().parents[2]
ROWS_CSV = ROOT / "hotline" / "data" / "divisions_43.csv"  # read as data: routing never imports hotline
DATA = ROOT.parent / "shared" / "data"
HAVE_DATA = (DATA / "teddy2020" / "place_map.json").is_file() and (DATA / "divisions" / "areas.csv").is_file()


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    with open(ROWS_CSV, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def changsha(rows) -> Gazetteer:
    return Gazetteer.from_rows(rows, "4301")


@pytest.fixture(scope="module")
def hunan(rows) -> Gazetteer:
    return Gazetteer.from_rows(rows, "43")


def code_of(rows, name: str, level: str = "street") -> str:
    return next(r["code"] for r in rows if r["name"] == name and r["level"] == level)


# ---- counties and streets named -------------------------------------------------------------


def test_a_county_and_its_street_resolve_to_both_codes(changsha, rows):
    r = changsha.resolve("岳麓区望月湖街道某小区门口的路灯坏了")
    assert (r.county_code, r.county_name) == ("430104", "岳麓区")
    assert (r.street_code, r.street_name) == (code_of(rows, "望月湖街道"), "望月湖街道")
    assert r.confidence > 0.9
    assert any("望月湖街道" in e for e in r.evidence)


def test_short_county_and_street_names_without_suffixes_resolve(changsha, rows):
    r = changsha.resolve("开福 伍家岭")
    assert r.county_code == "430105"
    assert r.street_code == code_of(rows, "伍家岭街道")
    assert changsha.resolve("我住在雨花，小区门口一直在施工").county_code == "430111"
    assert changsha.resolve("浏阳的一个小区停水三天").county_code == "430181"


def test_full_name_beats_short_name_and_a_longer_street_name_wins(changsha, rows):
    full, short = changsha.resolve("望城区"), changsha.resolve("望城")
    assert full.county_code == short.county_code == "430112"
    assert full.confidence > short.confidence > 0.5
    # 望城坡 is a street of 岳麓区, not 望城区
    slope = changsha.resolve("望城坡")
    assert (slope.county_code, slope.street_code) == ("430104", code_of(rows, "望城坡街道"))


def test_an_old_county_name_still_resolves(changsha):
    assert changsha.resolve("宁乡县城区").county_code == "430182"  # 宁乡县 became 宁乡市
    assert changsha.resolve("望城县").county_code == "430112"  # 望城县 became 望城区


def test_changsha_county_is_not_changsha_city(changsha, rows):
    r = changsha.resolve("长沙县星沙")
    assert (r.county_code, r.street_code) == ("430121", code_of(rows, "星沙街道"))
    for text in ("长沙市", "长沙的天气", "长沙"):
        assert changsha.resolve(text).county_code is None, text


def test_a_street_unique_to_one_county_names_the_county(changsha, rows):
    r = changsha.resolve("月亮岛附近有人夜间施工")
    assert (r.county_code, r.street_code) == ("430112", code_of(rows, "月亮岛街道"))
    assert 0.5 < r.confidence < 0.9  # a street alone is less sure than a county and its street
    assert changsha.resolve("梅溪湖一带").county_code == "430104"


def test_a_street_in_two_counties_is_ambiguous_until_the_county_is_named(changsha, rows):
    alone = changsha.resolve("高桥那边")  # 高桥街道 (雨花区) and 高桥镇 (长沙县)
    assert alone.confidence < 0.5
    assert {alone.county_code, *(c for c, _ in alone.alternatives)} >= {"430111", "430121"}
    named = changsha.resolve("雨花区高桥")
    assert (named.county_code, named.street_code) == ("430111", code_of(rows, "高桥街道"))
    assert named.confidence > 0.6


def test_a_misspelt_street_still_finds_its_county_with_less_confidence(changsha, rows):
    exact, typo = changsha.resolve("梅溪湖小区"), changsha.resolve("梅溪糊小区")
    assert (typo.county_code, typo.street_code) == ("430104", code_of(rows, "梅溪湖街道"))
    assert 0 < typo.confidence < exact.confidence
    assert changsha.resolve("伍家玲").county_code == "430105"
    assert changsha.resolve("岳鹿区").county_code == "430104"


def test_ordinary_words_that_look_like_names_are_not_places(changsha):
    for text in ("十字路口的红绿灯坏了", "开发区的企业", "长沙的朋友", "会同有关部门处理"):
        assert changsha.resolve(text).county_code is None, text
    road = changsha.resolve("芙蓉中路上")  # a road named after 芙蓉区 runs through several districts
    assert road.confidence < 0.2


def test_a_place_outside_the_region_gives_no_county(changsha, hunan):
    for text in ("株洲", "株洲市荷塘区", "株洲天元区有个路灯坏了"):
        r = changsha.resolve(text)
        assert (r.county_code, r.confidence) == (None, 0.0), text
        assert any("outside region" in e for e in r.evidence)
    assert hunan.resolve("株洲市荷塘区").county_code == "430202"


def test_empty_and_non_text_input_gives_an_empty_result(changsha):
    for text in ("", None, "😀😀😀", "   \n\t", "12345678901", "?!。，"):
        r = changsha.resolve(text)
        assert isinstance(r, PlaceResult)
        assert (r.county_code, r.street_code, r.confidence) == (None, None, 0.0), repr(text)


def test_a_very_long_text_is_read_only_at_its_start(changsha):
    filler = "楼下的路灯不亮已经很久了" * 4200  # 50,400 characters
    r = changsha.resolve(filler)
    assert r.confidence == 0.0
    assert changsha.resolve("岳麓区" + filler).county_code == "430104"
    assert changsha.resolve(filler + "岳麓区").county_code is None  # beyond max_chars


def test_words_hold_the_regions_names_with_and_without_suffixes(changsha):
    words = set(changsha.words())
    assert {"岳麓区", "岳麓", "望月湖街道", "望月湖", "浏阳市", "浏阳", "长沙县"} <= words
    assert "荷塘区" not in words  # 株洲's
    assert "路口" not in words  # 路口镇's base is an ordinary word


def test_a_region_must_be_a_known_code(rows):
    with pytest.raises(ValueError):
        Gazetteer.from_rows(rows, "长沙")
    with pytest.raises(ValueError):
        Gazetteer.from_rows(rows, "4401")  # not in Hunan's rows


@pytest.mark.skipif(not HAVE_DATA, reason=f"shared data not found at {DATA} (divisions CSVs)")
def test_the_gazetteer_builds_from_the_shared_divisions_folder():
    g = Gazetteer.from_data_dir(DATA, "4301")
    assert g.resolve("岳麓区望月湖街道").county_code == "430104"
    # other provinces' cities are known, as places outside the region
    assert g.resolve("广州市天河区").county_code is None


# ---- command-line entry points --------------------------------------------------------------


def test_place_main_prints_the_county_and_the_evidence(rows, capsys):
    assert place_main("开福 伍家岭", "4301", rows) == 0
    out = capsys.readouterr().out
    assert "开福区 430105" in out and "伍家岭街道" in out and "confidence" in out
    assert place_main("开福 伍家岭", "4301", rows, as_json=True) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["county_code"] == "430105"


def test_place_eval_main_scores_a_test_set_and_ends_with_json(rows, tmp_path, capsys):
    path = tmp_path / "set.csv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "county_code", "variant"])
        w.writerow(["岳麓区望月湖街道的路灯", "430104", "full"])
        w.writerow(["望月湖街道的路灯", "430104", "no_county"])
        w.writerow(["伍家岭的路灯", "430104", "no_county"])  # wrong on purpose: 伍家岭 is 开福区
        w.writerow(["株洲市荷塘区", "", "outside"])
    assert place_eval_main(path, "4301", rows, as_json=True) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["per_variant"] == {"full": 1.0, "no_county": 0.5}
    assert report["county_top1"] == pytest.approx(2 / 3, abs=1e-3)
    assert report["outside"]["n"] == 1 and report["outside"]["confident"] == 0.0
    assert place_eval_main(tmp_path / "missing.csv", "4301", rows) == 2


# ---- test-set construction (synthetic masked strings, no message text) ----------------------

PLACE_MAP = {
    "mappings": [
        {"masked": "A市", "level": "city", "name": "长沙市", "code": "4301"},
        {"masked": "A1区", "level": "county", "name": "芙蓉区", "code": "430102"},
        {"masked": "A3区", "level": "county", "name": "岳麓区", "code": "430104"},
        {"masked": "A5区", "level": "county", "name": "雨花区", "code": "430111"},
        {"masked": "A6区", "level": "county", "name": "望城区", "code": "430112"},
    ]
}


def test_masked_codes_are_restored_and_masking_quirks_are_not_county_mentions(rows):
    r = _Restorer(PLACE_MAP, rows)

    def roles(text):
        spans, restored = r.parse(text)
        return [s[3] for s in spans], r.render(restored, spans, {}), r.render(restored, spans, {"430104": ""})

    assert roles("A市A3区望月湖街道") == (["area", "county"], "长沙市岳麓区望月湖街道", "长沙市望月湖街道")
    assert roles("A5区亭街道")[:2] == (["street"], "雨花亭街道")  # 雨花亭街道, named after the district
    assert roles("A1区北路")[:2] == (["street"], "芙蓉北路")  # the base of 芙蓉北路街道
    assert roles("请希A6区管来看看")[:2] == (["quirk"], "请希望城管来看看")  # 希望 + 城管
    assert roles("楚龙街道")[1] == "湘龙街道"  # 湘 was masked as 楚


@pytest.mark.skipif(
    not HAVE_DATA, reason=f"Teddy messages not found at {DATA}: the place evaluation needs them"
)
def test_place_resolution_on_restored_messages_meets_the_target(changsha, tmp_path):
    out = tmp_path / "place_test.csv"
    built = build_place_testset(DATA, "4301", out)
    assert built["rows"]["no_county"] >= 500
    report = place_eval(changsha, out, repeats=3)
    assert report["per_variant"]["no_county"] >= 0.90, report
    assert report["per_variant"]["full"] >= 0.95, report
    assert report["outside"]["confident"] <= 0.02, report
