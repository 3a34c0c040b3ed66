"""Build the package's bundled division rows from HOTLINE_DATA_DIR/divisions.

The package ships one province's rows (the demo city's province, Hunan = 43)
so a plain install can load the demo city without the data folder.

    python scripts/build_divisions.py [--province 43] [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build(data_dir: Path, province: str, out: Path) -> int:
    src = data_dir / "divisions"
    if not src.is_dir():
        raise SystemExit(f"no divisions folder at {src}; set HOTLINE_DATA_DIR or --data-dir")
    rows: list[tuple[str, str, str, str]] = []
    with open(src / "provinces.csv", encoding="utf-8") as f:
        rows += [(r["code"], r["name"], "province", "") for r in csv.DictReader(f) if r["code"] == province]
    with open(src / "cities.csv", encoding="utf-8") as f:
        rows += [(r["code"], r["name"], "city", r["provinceCode"]) for r in csv.DictReader(f) if r["provinceCode"] == province]
    with open(src / "areas.csv", encoding="utf-8") as f:
        rows += [(r["code"], r["name"], "county", r["cityCode"]) for r in csv.DictReader(f) if r["provinceCode"] == province]
    with open(src / "streets.csv", encoding="utf-8") as f:
        rows += [(r["code"], r["name"], "street", r["areaCode"]) for r in csv.DictReader(f) if r["provinceCode"] == province]
    if not rows:
        raise SystemExit(f"province {province} not found in {src}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["code", "name", "level", "parent_code"])
        w.writerows(rows)
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--province", default="43")
    default_dir = os.environ.get("HOTLINE_DATA_DIR") or str(ROOT.parent / "shared" / "data")
    ap.add_argument("--data-dir", default=default_dir)
    args = ap.parse_args(argv)
    out = ROOT / "hotline" / "data" / f"divisions_{args.province}.csv"
    n = build(Path(args.data_dir), args.province, out)
    print(f"wrote {n} rows to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
