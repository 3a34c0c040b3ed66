import pytest

from cases.models import Unit
from routing.catalogue_store import CatalogueError, export_csv, import_csv, load_rules, territory_map
from routing.models import CatalogueRule


@pytest.fixture
async def units(app, world):
    return {name: (await Unit.get(id=uid)).name for name, uid in world.units.items()}


async def test_a_catalogue_round_trips_through_csv(units):
    text = (
        "position,enabled,category,request_type,division_code,keywords,lead,co_units,note\n"
        f"10,1,,,,燃气、天然气,{units['zjj']},{units['jtj']},燃气\n"
        "20,1,城乡建设,complaint,430104,,district,,按属地\n"
    )
    assert await import_csv(text) == 2
    rules = await load_rules()
    assert [r.position for r in rules] == [10, 20]
    assert rules[0].keywords == ("燃气", "天然气") and rules[1].lead == "district"
    exported = await export_csv()
    assert units["zjj"] in exported and "district" in exported
    assert await import_csv(exported) == 2


async def test_a_bad_file_names_every_bad_line_and_changes_nothing(units):
    await import_csv(f"position,lead\n1,{units['zjj']}\n")
    before = await CatalogueRule.all().count()
    bad = (
        "position,enabled,category,request_type,division_code,keywords,lead,co_units,note\n"
        "x,1,,,,,不存在的单位,,\n"
        f"5,2,,bogus,43ab,,{units['zjj']},也不存在,\n"
    )
    with pytest.raises(CatalogueError) as err:
        await import_csv(bad)
    assert len(err.value.problems) == 2
    assert "第 2 行" in err.value.problems[0] and "不存在的单位" in err.value.problems[0]
    assert "第 3 行" in err.value.problems[1] and "也不存在" in err.value.problems[1]
    assert await CatalogueRule.all().count() == before


async def test_a_file_without_the_required_columns_is_refused(units):
    with pytest.raises(CatalogueError, match="缺少列"):
        await import_csv("foo,bar\n1,2\n")


async def test_territorial_units_are_found_by_division_code(world):
    territory = await territory_map()
    unit = await Unit.get(id=territory["430104001"])
    assert (unit.kind, unit.division_code) == ("territorial", "430104001")
    assert all(code.isdigit() for code in territory)
