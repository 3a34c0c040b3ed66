"""The dispatch catalogue as stored: loading rules, and CSV import/export for admins.

In CSV a unit is written by its exact name, so admins can edit the file in a
spreadsheet; the lead may also be ``district`` or ``street`` (the place's
territorial unit).
"""

from __future__ import annotations

import csv
import io
import re

from tortoise.transactions import in_transaction

from cases.models import Unit
from routing.catalogue import LEAD_DISTRICT, LEAD_STREET, Rule
from routing.models import CatalogueRule

CSV_COLUMNS = ["position", "enabled", "category", "request_type", "division_code", "keywords", "lead", "co_units", "note"]
REQUEST_TYPES = {"", "consult", "help", "complaint", "report", "suggestion", "praise"}
_SPLIT = re.compile(r"[、,，;；\s]+")


class CatalogueError(ValueError):
    """A catalogue file that cannot be imported; lists every bad line."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def split_keywords(value: str) -> tuple[str, ...]:
    return tuple(k for k in _SPLIT.split(value or "") if k)


def to_rule(row: CatalogueRule) -> Rule:
    return Rule(
        id=row.id,
        position=row.position,
        lead=row.lead,
        category=row.category,
        request_type=row.request_type,
        division_code=row.division_code,
        keywords=split_keywords(row.keywords),
        co_unit_ids=tuple(row.co_unit_ids or ()),
        enabled=row.enabled,
        note=row.note,
    )


async def load_rules() -> list[Rule]:
    return [to_rule(r) for r in await CatalogueRule.all().order_by("position", "id")]


async def territory_map() -> dict[str, int]:
    """Division code → the territorial unit that owns it."""
    rows = await Unit.filter(kind="territorial", is_active=True).exclude(division_code=None).values_list(
        "division_code", "id"
    )
    return {code: uid for code, uid in rows}


async def export_csv() -> str:
    names = dict(await Unit.all().values_list("id", "name"))
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in await CatalogueRule.all().order_by("position", "id"):
        lead = r.lead if r.lead in (LEAD_DISTRICT, LEAD_STREET) else names.get(int(r.lead[5:]), r.lead)
        co = "、".join(names.get(u, str(u)) for u in r.co_unit_ids or ())
        w.writerow([r.position, "1" if r.enabled else "0", r.category, r.request_type, r.division_code, r.keywords, lead, co, r.note])
    return out.getvalue()


async def parse_csv(text: str) -> list[dict]:
    """Validate a whole file; raise CatalogueError naming each bad line, or return rows to store."""
    units = dict(await Unit.filter(is_active=True).values_list("name", "id"))
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = [c for c in ("position", "lead") if c not in (reader.fieldnames or [])]
    if missing:
        raise CatalogueError([f"缺少列: {', '.join(missing)}（应有 {', '.join(CSV_COLUMNS)}）"])
    rows, problems = [], []
    for line, raw in enumerate(reader, start=2):
        get = lambda k, raw=raw: (raw.get(k) or "").strip()  # noqa: E731
        errs = []
        try:
            position = int(get("position"))
        except ValueError:
            errs.append("position 必须是整数")
            position = 0
        lead = get("lead")
        if lead not in (LEAD_DISTRICT, LEAD_STREET):
            if lead in units:
                lead = f"unit:{units[lead]}"
            else:
                errs.append(f"主办单位「{lead}」不存在")
        co = []
        for name in split_keywords(get("co_units")):
            if name in units:
                co.append(units[name])
            else:
                errs.append(f"协办单位「{name}」不存在")
        request_type = get("request_type")
        if request_type not in REQUEST_TYPES:
            errs.append(f"诉求类型「{request_type}」无效")
        division = get("division_code")
        if division and not division.isdigit():
            errs.append("division_code 必须是数字区划代码")
        enabled = get("enabled") or "1"
        if enabled not in ("0", "1"):
            errs.append("enabled 只能是 0 或 1")
        for name, limit in (("category", 200), ("keywords", 500), ("note", 200)):
            if len(get(name)) > limit:
                errs.append(f"{name} 超过 {limit} 字")
        if errs:
            problems.append(f"第 {line} 行: " + "；".join(errs))
            continue
        rows.append(
            dict(
                position=position,
                enabled=enabled == "1",
                category=get("category"),
                request_type=request_type,
                division_code=division,
                keywords="、".join(split_keywords(get("keywords"))),
                lead=lead,
                co_unit_ids=co,
                note=get("note"),
            )
        )
    if problems:
        raise CatalogueError(problems)
    return rows


async def import_csv(text: str) -> int:
    """Replace the whole catalogue with the file's rules, or change nothing."""
    rows = await parse_csv(text)
    async with in_transaction() as conn:
        await CatalogueRule.all().using_db(conn).delete()
        for row in rows:
            await CatalogueRule.create(**row, using_db=conn)
    return len(rows)
