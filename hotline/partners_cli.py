"""``hotline partners …``: the partner-hotline directory as CSV (code,name,phone,intake_url,secret_env,is_active)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from hotline.settings import Settings


def cmd_export(settings: Settings, args) -> int:
    from hotline.cli import with_db
    from hotline.partners import export_csv

    text = asyncio.run(with_db(settings, export_csv))
    if args.file == "-":
        sys.stdout.write(text)
    else:
        Path(args.file).write_text(text, encoding="utf-8")
    return 0


def cmd_import(settings: Settings, args) -> int:
    from hotline.cli import with_db
    from hotline.partners import import_csv

    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    try:
        created, updated = asyncio.run(with_db(settings, lambda: import_csv(text)))
    except ValueError as exc:
        print(f"错误：{exc}（未导入任何记录）", file=sys.stderr)
        return 1
    print(f"合作热线：新增 {created} 条，更新 {updated} 条")
    return 0


def add_parser(sub) -> None:
    partners = sub.add_parser("partners", help="the partner-hotline directory (CSV import/export)")
    psub = partners.add_subparsers(dest="partners_command", required=True)
    p = psub.add_parser("export", help="write the directory as CSV")
    p.add_argument("file", nargs="?", default="-", help="file (default: stdout)")
    p.set_defaults(func=cmd_export)
    p = psub.add_parser("import", help="create or update entries by code from a CSV; all rows or none")
    p.add_argument("file", help="CSV file, or - for stdin")
    p.set_defaults(func=cmd_import)
