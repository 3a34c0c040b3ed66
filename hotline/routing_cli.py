"""``hotline routing …``: train, evaluate and inspect routing; edit the catalogue."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from hotline.settings import Settings


def _rows(settings: Settings, region: str) -> list[dict]:
    from hotline.divisions import division_rows

    return division_rows(region, settings.data_dir)


def cmd_place(settings: Settings, args) -> int:
    from routing.place import place_main

    region = args.region or settings.region
    return place_main(args.text, region, _rows(settings, region), as_json=args.json)


def cmd_place_eval(settings: Settings, args) -> int:
    from routing.place import place_eval_main

    region = args.region or settings.region
    return place_eval_main(Path(args.data), region, _rows(settings, region), as_json=args.json)


def cmd_catalogue_export(settings: Settings, args) -> int:
    from hotline.cli import with_db
    from routing.catalogue_store import export_csv

    text = asyncio.run(with_db(settings, export_csv))
    if args.file == "-":
        sys.stdout.write(text)
    else:
        Path(args.file).write_text(text, encoding="utf-8")
        print(f"已导出派单目录到 {args.file}")
    return 0


def cmd_catalogue_import(settings: Settings, args) -> int:
    from hotline.cli import with_db
    from routing.catalogue_store import CatalogueError, import_csv

    try:
        text = Path(args.file).read_text(encoding="utf-8-sig")
    except OSError as exc:
        print(f"错误：无法读取 {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        n = asyncio.run(with_db(settings, lambda: import_csv(text)))
    except CatalogueError as exc:
        print("错误：派单目录未导入，以下行有问题：", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"已导入派单目录 {n} 条（原目录已替换）")
    return 0


def _data_dir(settings: Settings, given: str | None) -> Path | None:
    path = Path(given) if given else settings.data_dir
    if path is None or not (path / "teddy2020" / "labelled_train.csv").is_file():
        print(
            f"错误：找不到训练数据 {path or '(未设置)'}/teddy2020/labelled_train.csv；"
            "请设置 HOTLINE_DATA_DIR 或使用 --data-dir",
            file=sys.stderr,
        )
        return None
    return path


def cmd_train(settings: Settings, args) -> int:
    from routing.classifier import default_model_path
    from routing.training import train_main

    data_dir = _data_dir(settings, args.data_dir)
    if data_dir is None:
        return 2
    words = _gazetteer_words(settings)
    train_main(data_dir, Path(args.out) if args.out else default_model_path(), folds=args.folds,
               user_words=words, as_json=args.json)
    return 0


def cmd_eval(settings: Settings, args) -> int:
    from routing import text
    from routing.training import eval_main

    text.configure(_gazetteer_words(settings))
    return eval_main(Path(args.model) if args.model else None, Path(args.data), as_json=args.json)


def cmd_retrain(settings: Settings, args) -> int:
    from hotline.cli import with_db
    from hotline.routing_service import RoutingService
    from routing import text
    from routing.retraining import retrain

    data_dir = _data_dir(settings, args.data_dir)
    if data_dir is None:
        return 2
    text.configure(_gazetteer_words(settings))

    async def work():
        live = (await RoutingService(settings).classifier()).classifier
        return await retrain(data_dir, live, folds=args.folds)

    verdict = asyncio.run(with_db(settings, work))
    print(verdict.reason)
    return 0 if verdict.replace else 1


def _gazetteer_words(settings: Settings) -> list[str]:
    from routing.gazetteer import Gazetteer

    return Gazetteer.from_rows(_rows(settings, settings.region), settings.region).words()


def add_parser(sub) -> None:
    routing = sub.add_parser("routing", help="classifier, place resolution and the dispatch catalogue")
    rsub = routing.add_subparsers(dest="routing_command", required=True)
    p = rsub.add_parser("place", help="resolve the place named in a text")
    p.add_argument("text")
    p.add_argument("--region", help="division code (default: HOTLINE_REGION)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_place)
    p = rsub.add_parser("place-eval", help="score place resolution on a CSV (text, county_code, variant)")
    p.add_argument("--data", required=True)
    p.add_argument("--region")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_place_eval)
    p = rsub.add_parser("train", help="train the category model from HOTLINE_DATA_DIR and write it")
    p.add_argument("--data-dir", help="folder holding teddy2020/ (default: HOTLINE_DATA_DIR)")
    p.add_argument("--out", help="model file (default: the package's shipped model)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_train)
    p = rsub.add_parser("eval", help="score the model on a labelled CSV (columns of labelled_train.csv)")
    p.add_argument("--data", required=True)
    p.add_argument("--model", help="model file (default: the shipped model)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)
    p = rsub.add_parser("retrain", help="retrain with the city's corrections; make live only if not worse")
    p.add_argument("--data-dir")
    p.add_argument("--folds", type=int, default=3)
    p.set_defaults(func=cmd_retrain)
    p = rsub.add_parser("catalogue-export", help="write the dispatch catalogue as CSV")
    p.add_argument("file", nargs="?", default="-")
    p.set_defaults(func=cmd_catalogue_export)
    p = rsub.add_parser("catalogue-import", help="replace the dispatch catalogue from a CSV file")
    p.add_argument("file")
    p.set_defaults(func=cmd_catalogue_import)


