"""The demo city: units of the configured region, and demo users to try the system."""

from __future__ import annotations

import secrets
from importlib import resources
from pathlib import Path

from tortoise.transactions import in_transaction

from cases.models import Unit, User
from hotline.auth import hash_password
from hotline.divisions import division_rows

CENTRE_NAME = "12345政务服务便民热线中心"

# One department per first-level category the classifier knows, plus the
# departments a city's catalogue always names.
DEPARTMENTS = (
    "市住房和城乡建设局",
    "市城市管理和综合执法局",
    "市生态环境局",
    "市交通运输局",
    "市教育局",
    "市文化旅游广电局",
    "市人力资源和社会保障局",
    "市商务局",
    "市市场监督管理局",
    "市卫生健康委员会",
    "市自然资源和规划局",
    "市水务局",
    "市公安局",
    "市民政局",
)


def _street_unit_name(county: str, street: str) -> str:
    suffix = "办事处" if street.endswith("街道") else "人民政府"
    return f"{county}{street}{suffix}"


async def load_demo_city(region: str, data_dir: Path | None) -> dict[str, str] | None:
    """Create the units and demo users; returns the users' passwords, or None if loaded before."""
    if await Unit.exists():
        return None
    rows = [
        r
        for r in division_rows(region, data_dir)
        if r["code"].startswith(region) and r["level"] in ("county", "street")
    ]
    if not rows:
        raise SystemExit(f"区划代码 {region} 下没有区县数据")
    passwords: dict[str, str] = {}
    async with in_transaction() as conn:
        centre = await Unit.create(name=CENTRE_NAME, kind="centre", division_code=region, using_db=conn)
        depts = {}
        for name in DEPARTMENTS:
            depts[name] = await Unit.create(name=name, kind="functional", parent_id=centre.id, using_db=conn)
        counties: dict[str, Unit] = {}
        county_names: dict[str, str] = {}
        for r in rows:
            if r["level"] == "county":
                counties[r["code"]] = await Unit.create(
                    name=f"{r['name']}人民政府", kind="territorial", division_code=r["code"], using_db=conn
                )
                county_names[r["code"]] = r["name"]
        first_street: Unit | None = None
        for r in rows:
            if r["level"] == "street" and r["parent_code"] in counties:
                unit = await Unit.create(
                    name=_street_unit_name(county_names[r["parent_code"]], r["name"]),
                    kind="territorial",
                    division_code=r["code"],
                    parent_id=counties[r["parent_code"]].id,
                    using_db=conn,
                )
                if first_street is None:
                    first_street = unit
        first_county = next(iter(counties.values()))
        demo_users = [
            ("admin", "系统管理员", "admin", None),
            ("agent", "话务员小王", "agent", None),
            ("dispatcher", "派单员小李", "dispatcher", None),
            ("leader", "值班领导", "leader", None),
            ("zjj", "住建局承办人", "handler", depts["市住房和城乡建设局"]),
            ("jtj", "交通局承办人", "handler", depts["市交通运输局"]),
            ("district", f"{first_county.name}承办人", "handler", first_county),
        ]
        if first_street is not None:
            demo_users.append(("street", f"{first_street.name}承办人", "handler", first_street))
        for username, display, role, unit in demo_users:
            password = secrets.token_urlsafe(9)
            passwords[username] = password
            await User.create(
                username=username,
                display_name=display,
                role=role,
                unit_id=unit.id if unit else None,
                password_hash=hash_password(password),
                using_db=conn,
            )
    from routing.catalogue_store import import_csv

    catalogue = resources.files("hotline") / "data" / "demo_catalogue.csv"
    await import_csv(catalogue.read_text(encoding="utf-8"))
    from hotline.partners import load_demo_partners

    await load_demo_partners()  # 长三角 12345 centres, 12333, 12366
    return passwords
