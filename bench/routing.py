"""Routing speed: classification, place resolution and duplicate search.

Usage::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test python bench/routing.py [--data-dir ../shared/data]

- classify: ``Classifier.predict`` once per message over every full-text
  labelled message, in file order (long ones included), p50/p99 per call;
  beside it, in the same run, the issue's baseline (TF-IDF of jieba words +
  char 1-3-grams, LinearSVC, scikit-learn pipeline) trained on the same
  messages and timed the same way;
- place: ``Gazetteer.resolve`` over the same messages (region 4301);
- duplicates: ``find_duplicates`` on PostgreSQL against 10,000 and then
  100,000 open cases spread over 长沙's streets and the 7 categories (a
  private database, created and dropped here), 200 searches each.

The last line is one JSON object with ``classify_p50_ms``, ``classify_p99_ms``,
``place_p99_ms``, ``dup_ms_10k``, ``dup_ms_100k`` (and the baseline's figures).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import secrets
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def pct(values, q):
    return float(np.percentile(np.asarray(values), q))


def messages(data_dir: Path) -> list[str]:
    with open(data_dir / "teddy2020" / "labelled_train.csv", encoding="utf-8", newline="") as f:
        return [f"{r['title']} {r['text']}".strip() for r in csv.DictReader(f)]


def labelled(data_dir: Path) -> tuple[list[str], list[str]]:
    with open(data_dir / "teddy2020" / "labelled_train.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [f"{r['title']} {r['text']}".strip() for r in rows], [r["label"] for r in rows]


def time_calls(fn, items) -> list[float]:
    fn(items[0])  # warm caches (jieba, first allocation)
    out = []
    for x in items:
        t = time.perf_counter()
        fn(x)
        out.append((time.perf_counter() - t) * 1000)
    return out


def bench_classify(data_dir: Path) -> dict:
    import jieba
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline, make_union
    from sklearn.svm import LinearSVC

    from routing.classifier import Classifier

    texts, labels = labelled(data_dir)
    clf = Classifier.load()
    ours = time_calls(clf.predict, texts)
    jieba.setLogLevel(60)
    baseline = make_pipeline(
        make_union(
            TfidfVectorizer(tokenizer=jieba.lcut, token_pattern=None, lowercase=False),
            TfidfVectorizer(analyzer="char", ngram_range=(1, 3)),
        ),
        LinearSVC(),
    )
    baseline.fit(texts, labels)
    base = time_calls(lambda t: baseline.predict([t]), texts)
    return {
        "messages": len(texts),
        "classify_p50_ms": round(pct(ours, 50), 3),
        "classify_p99_ms": round(pct(ours, 99), 3),
        "classify_max_ms": round(max(ours), 3),
        "baseline_p50_ms": round(pct(base, 50), 3),
        "baseline_p99_ms": round(pct(base, 99), 3),
    }


def bench_place(data_dir: Path) -> dict:
    from hotline.divisions import division_rows
    from routing.gazetteer import Gazetteer

    g = Gazetteer.from_rows(division_rows("4301", data_dir), "4301")
    texts = messages(data_dir)
    t = time_calls(g.resolve, texts)
    return {"place_p50_ms": round(pct(t, 50), 3), "place_p99_ms": round(pct(t, 99), 3)}


# ---- duplicates on PostgreSQL -------------------------------------------------------------

ISSUE_WORDS = (
    "路灯 不亮 下水道 堵塞 污水 噪音 扰民 广场舞 油烟 占道 经营 违建 物业 收费 停车 乱停 垃圾 清运 "
    "绿化 树木 修剪 电梯 故障 漏水 停水 水压 燃气 异味 施工 夜间 渣土 扬尘 公交 站台 出租车 拒载 "
    "学校 补课 收费 工资 拖欠 社保 缴纳 医院 排队 药品 超市 过期 食品 餐馆 卫生 宠物 狗 吠叫"
).split()
CATEGORIES = ["城乡建设", "环境保护", "交通运输", "教育文体", "劳动和社会保障", "商贸旅游", "卫生计生"]


async def fill(conn, n: int, streets: list[tuple[str, str]], start: int) -> None:
    """Insert ``n`` open cases with stored issue words, NOT NULL columns given plain defaults."""
    cols = await conn.fetch(
        "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns "
        "WHERE table_name = 'case' ORDER BY ordinal_position"
    )
    rnd = random.Random(start)
    now = datetime.now(timezone.utc)
    rows = []
    for i in range(start, start + n):
        street, district = rnd.choice(streets)
        values = {}
        for c in cols:
            name, typ = c["column_name"], c["data_type"]
            if name == "id":
                continue
            if c["is_nullable"] == "YES":
                values[name] = None
            elif "char" in typ or typ == "text":
                values[name] = ""
            elif typ in ("integer", "bigint", "smallint"):
                values[name] = 0
            elif typ == "boolean":
                values[name] = False
            elif typ.startswith("timestamp"):
                values[name] = now
            elif typ in ("double precision", "real"):
                values[name] = 0.0
            elif typ in ("json", "jsonb"):
                values[name] = "{}"
        values.update(
            number=f"20990101-{i:06d}", query_code="ABCDEF", version=1, status="in_progress",
            channel="phone", request_type="complaint", content="bench", urgency="general",
            street_code=street, district_code=district, category_l1=rnd.choice(CATEGORIES),
            keywords=" ".join(rnd.sample(ISSUE_WORDS, 6)),
            created_at=now.replace(microsecond=0) - __import__("datetime").timedelta(minutes=rnd.randrange(30 * 24 * 60)),
        )
        rows.append(values)
    names = list(rows[0])
    await conn.copy_records_to_table("case", records=[tuple(r[k] for k in names) for r in rows], columns=names)


async def bench_duplicates(url: str) -> dict:
    import asyncpg
    from tortoise import Tortoise

    from hotline.db import migrate, tortoise_config
    from hotline.divisions import division_rows
    from hotline.settings import Settings
    from routing import text as T
    from routing.duplicates import find_duplicates

    name = f"hotline_bench_{secrets.token_hex(4)}"
    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres", query=""))
    target = urlunsplit(parts._replace(path=f"/{name}"))
    c = await asyncpg.connect(admin)
    await c.execute(f'CREATE DATABASE "{name}"')
    await c.close()
    out = {}
    try:
        await migrate(Settings(database_url=target))
        streets = [(r["code"], r["parent_code"]) for r in division_rows("4301", None) if r["level"] == "street" and r["code"].startswith("4301")]
        conn = await asyncpg.connect(urlunsplit(urlparse_pg(target)))
        await Tortoise.init(config=tortoise_config(target))
        T.tokens("预热")
        rnd = random.Random(7)
        probes = [
            (rnd.choice(streets), rnd.choice(CATEGORIES), "，".join(rnd.sample(ISSUE_WORDS, 5)))
            for _ in range(200)
        ]
        loaded = 0
        for size in (10_000, 100_000):
            await fill(conn, size - loaded, streets, loaded)
            loaded = size
            await conn.execute('ANALYZE "case"')
            times = []
            now = datetime.now(timezone.utc)
            for (street, district), cat, content in probes:
                t = time.perf_counter()
                await find_duplicates(
                    content=content, street_code=street, district_code=district, category_l1=cat,
                    tokenize=T.tokens, place_words=set(), now=now,
                )
                times.append((time.perf_counter() - t) * 1000)
            key = f"dup_ms_{size // 1000}k"
            out[key] = round(pct(times, 50), 2)
            out[key + "_p99"] = round(pct(times, 99), 2)
            print(f"  duplicates among {size:>7,} open cases: p50 {out[key]:.2f} ms, p99 {out[key + '_p99']:.2f} ms")
        plan = await conn.fetch(
            "EXPLAIN SELECT number, keywords FROM \"case\" WHERE status = ANY($1) AND created_at >= $2 "
            "AND street_code = $3 AND category_l1 = $4 ORDER BY created_at DESC LIMIT 300",
            ["in_progress"], datetime(2000, 1, 1, tzinfo=timezone.utc), probes[0][0][0], probes[0][1],
        )
        out["dup_plan"] = " | ".join(r[0].strip() for r in plan[:3])
        await conn.close()
        await Tortoise.close_connections()
    finally:
        c = await asyncpg.connect(admin)
        await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await c.close()
    return out


def urlparse_pg(url: str):
    return urlsplit(url)._replace(scheme="postgresql", query="")


def main() -> int:
    ap = argparse.ArgumentParser(description="routing speed")
    ap.add_argument("--data-dir", default=os.environ.get("HOTLINE_DATA_DIR") or str(ROOT.parent / "shared" / "data"))
    args = ap.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        print("bench/routing.py needs DATABASE_URL=postgres://… (duplicates are measured on PostgreSQL)", file=sys.stderr)
        return 2
    data_dir = Path(args.data_dir)
    if not (data_dir / "teddy2020" / "labelled_train.csv").is_file():
        print(f"bench/routing.py needs the messages in {data_dir}/teddy2020 (HOTLINE_DATA_DIR)", file=sys.stderr)
        return 2
    print(f"bench/routing.py on {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; one call per message, in file order")
    figures = {}
    figures.update(bench_classify(data_dir))
    print(f"  classify ({figures['messages']} messages): p50 {figures['classify_p50_ms']} ms, p99 {figures['classify_p99_ms']} ms "
          f"(baseline TF-IDF+LinearSVC, same run: p50 {figures['baseline_p50_ms']} ms, p99 {figures['baseline_p99_ms']} ms)")
    figures.update(bench_place(data_dir))
    print(f"  place: p50 {figures['place_p50_ms']} ms, p99 {figures['place_p99_ms']} ms")
    figures.update(asyncio.run(bench_duplicates(url)))
    print(json.dumps(figures, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
