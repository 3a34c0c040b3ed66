"""Build the 属地 (place) test set from the masked Teddy messages, at evaluation time.

The CSV (columns text, county_code, variant) holds restored citizen messages, which may not be
redistributed: write it outside the repository (the default is under /tmp).

    python scripts/build_place_testset.py --data-dir ../shared/data --region 4301 --out /tmp/place_test.csv

Then: hotline routing place-eval --data /tmp/place_test.csv --region 4301
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from routing.place import build_place_testset  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--region", default="4301", help="division code prefix: 4301 (长沙市), 43 (湖南省)")
    ap.add_argument(
        "--out", type=Path, default=None, help="CSV to write (default /tmp/place_test_REGION.csv)"
    )
    ap.add_argument("--seed", type=int, default=20200512, help="seed of the typo variant")
    args = ap.parse_args(argv)
    out = args.out or Path(f"/tmp/place_test_{args.region}.csv")
    if out.resolve().is_relative_to(ROOT):
        print(f"refusing to write message text inside the repository: {out}", file=sys.stderr)
        return 2
    try:
        report = build_place_testset(args.data_dir, args.region, out, seed=args.seed)
    except FileNotFoundError as e:
        print(e, file=sys.stderr)
        return 2
    print(json.dumps(report, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
