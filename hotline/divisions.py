"""Division rows for the configured region: the package's bundled copy, else the data folder."""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

from routing.gazetteer import load_division_rows


def division_rows(region: str, data_dir: Path | None) -> list[dict[str, str]]:
    """Rows ``code,name,level,parent_code`` of the region's whole province."""
    province = region[:2]
    bundled = resources.files("hotline") / "data" / f"divisions_{province}.csv"
    if bundled.is_file():
        with bundled.open(encoding="utf-8") as f:
            return list(csv.DictReader(f))
    if data_dir is None or not (Path(data_dir) / "divisions").is_dir():
        raise SystemExit(
            f"区划 {province} 未随软件包提供，请设置 HOTLINE_DATA_DIR 指向含 divisions/ 的数据目录"
        )
    return load_division_rows(Path(data_dir), region)
