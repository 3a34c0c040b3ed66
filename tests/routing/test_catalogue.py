import pytest

from routing.catalogue import Facts, Rule, parse_lead, route

TERRITORY = {"430104": 30, "430104001": 31, "430105": 40}


def facts(**kw):
    base = {"category": ("城乡建设", "城市建设和市政管理", "城管执法"), "district_code": "430104", "street_code": "430104001", "text": "小区门口占道经营"}
    base.update(kw)
    return Facts(**base)


def test_the_first_matching_rule_wins():
    rules = [
        Rule(id=2, position=20, lead="unit:7", category="城乡建设"),
        Rule(id=1, position=10, lead="unit:5", category="城乡建设/城市建设和市政管理"),
    ]
    r = route(rules, facts(), TERRITORY)
    assert (r.lead_unit_id, r.rule_id, r.via) == (5, 1, "rule")


def test_a_keyword_rule_matches_only_when_a_keyword_is_in_the_text():
    rules = [
        Rule(id=1, position=1, lead="unit:9", keywords=("燃气", "天然气")),
        Rule(id=2, position=2, lead="unit:5", category="城乡建设"),
    ]
    assert route(rules, facts(text="楼下天然气味道很重"), TERRITORY).lead_unit_id == 9
    assert route(rules, facts(text="楼下天然气味道很重"), TERRITORY).keywords == ("天然气",)
    assert route(rules, facts(), TERRITORY).lead_unit_id == 5


def test_disabled_rules_and_other_request_types_and_places_are_skipped():
    rules = [
        Rule(id=1, position=1, lead="unit:1", enabled=False),
        Rule(id=2, position=2, lead="unit:2", request_type="consult"),
        Rule(id=3, position=3, lead="unit:3", division_code="430105"),
        Rule(id=4, position=4, lead="unit:4", division_code="430104"),
    ]
    assert route(rules, facts(request_type="complaint"), TERRITORY).lead_unit_id == 4


def test_a_place_rule_sends_the_case_to_the_district_not_the_street():
    rules = [Rule(id=1, position=1, lead="district", category="城乡建设")]
    assert route(rules, facts(), TERRITORY).lead_unit_id == 30


def test_only_a_street_rule_pushes_a_matter_down_to_the_street():
    rules = [Rule(id=1, position=1, lead="street", category="城乡建设")]
    assert route(rules, facts(), TERRITORY).lead_unit_id == 31
    # Without a known street it still reaches the district government.
    assert route(rules, facts(street_code=""), TERRITORY).lead_unit_id == 30


def test_a_place_rule_is_skipped_when_the_place_is_unknown():
    rules = [
        Rule(id=1, position=1, lead="district"),
        Rule(id=2, position=2, lead="unit:8"),
    ]
    assert route(rules, facts(district_code="", street_code=""), TERRITORY).lead_unit_id == 8


def test_without_a_matching_rule_the_district_government_then_the_centre_takes_it():
    assert route([], facts(), TERRITORY).via == "district"
    assert route([], facts(), TERRITORY).lead_unit_id == 30
    nowhere = route([], facts(district_code="", street_code=""), TERRITORY)
    assert nowhere.via == "centre" and nowhere.lead_unit_id is None


def test_co_units_never_repeat_the_lead():
    rules = [Rule(id=1, position=1, lead="unit:5", co_unit_ids=(5, 6))]
    assert route(rules, facts(), TERRITORY).co_unit_ids == (6,)


@pytest.mark.parametrize("bad", ["", "unit:", "unit:x", "unit:0", "city"])
def test_a_malformed_lead_is_refused_with_the_reason(bad):
    with pytest.raises(ValueError, match="lead must be"):
        parse_lead(bad)
