"""Scratch benchmark for the category classifier (routing.classifier): figures for docs/routing.md.

Usage::

    python bench/routing_classify.py [--data-dir ../shared/data] [--model routing/model/category.npz]
        [--latency] [--out-of-scope] [--baseline]

Reads the messages from the data folder at run time; prints figures only, never message text.

- ``--latency``: per-call ``Classifier.predict`` time over every full-text labelled message (p50/p99/max).
- ``--out-of-scope``: the confidence the model gives to messages of the 8 categories it was never
  trained on. There are no labels for those, so proxies are picked by rule (``out_of_scope_sets``)
  from ``replies.csv`` and ``votes.csv``; used only to look at confidence distributions.
- ``--tradeoff``: cross-validates once more and prints, per confidence threshold, the share of
  held-out in-scope messages that would be dispatched automatically (and their accuracy) beside
  the share of out-of-scope proxies that would be.
- ``--baseline``: the issue's baseline (TF-IDF jieba words + char 1-3-grams, LinearSVC) under the same
  GroupKFold, for a like-for-like comparison with the cross-validated figures of ``hotline routing train``.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
import unicodedata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from routing.classifier import Classifier, default_model_path  # noqa: E402
from routing.training import load_labelled  # noqa: E402

# Proxies for the 8 first-level categories the model has no training data for.
# (1) "reply department": replies.csv messages whose official reply (first 300
#     characters) names exactly one department that owns an untrained category and
#     none that owns a trained one. This does not look at the message's own words.
# (2) "title keywords": votes.csv + replies.csv messages whose title names a topic of
#     exactly one untrained category. Cruder (a title word is not a category).
# Both are noisy (a 公安 reply can answer a parking complaint the labels file under
# 城乡建设), so they show confidence distributions, not error rates.
DEPARTMENTS = {
    "政法": r"公安局|派出所|公安分局|交警|法院|司法局",
    "民政": r"民政局|民政厅|残联|退役军人事务",
    "农村农业": r"农业农村局|农业局|畜牧水产|林业局|水利局|扶贫办|农委|农业农村厅",
    "国土资源": r"国土资源局|自然资源局|国土分局|自然资源和规划",
    "纪检监察": r"纪委|监委",
    "经济管理": r"税务局|发改委|发展和改革|财政局|金融办",
    "科技与信息产业": r"工信局|通信管理局|科技局|工业和信息化",
    "党务政务": r"组织部|宣传部|统战部|民宗局|民族宗教",
}
TRAINED_DEPARTMENTS = (
    r"教育局|教育体育局|教体局|人社局|人力资源和社会保障|住建局|住房和城乡建设|城乡建设局|交通运输局|交通局"
    r"|卫健委|卫生健康|卫计委|卫生计生|环保局|生态环境|环境保护局|市场监督|市场监管|城管|行政执法局|商务局"
    r"|文旅|旅游局|规划局|公积金|医保|医疗保障|物价局|邮政|住房保障|房产局|不动产"
)
TITLE_KEYWORDS = {
    "政法": r"派出所|公安|民警|警察|户口|户籍|落户|诈骗|赌博|黑恶|治安|盗窃|偷盗|打架|斗殴|报警|交警|驾照|驾驶证|闯红灯|法院|律师|判决",
    "民政": r"低保|养老院|敬老院|殡葬|墓地|公墓|婚姻登记|残疾|救助|特困|五保|退役军人|优抚|慈善|高龄|孤儿|社会组织",
    "农村农业": r"农业|合作社|种植|农田|耕地|土地承包|承包地|扶贫|贫困户|惠农|农机|化肥|种子|水利|水库|灌溉|林业|林地|山林|砍伐|村务|猪瘟",
    "国土资源": r"宅基地|征地|土地征收|国土|采砂|矿山|采矿|采石|地质灾害|土地出让",
    "纪检监察": r"腐败|贪污|受贿|行贿|纪委|违纪|吃拿卡要|渎职|滥用职权|公款",
    "经济管理": r"税务|发票|纳税|偷税|逃税|银行|贷款|证券|保险公司|p2p|理财|集资",
    "科技与信息产业": r"宽带|信号|基站|电信|移动公司|联通|专利|5g|网速",
    "党务政务": r"党员|党组织|党费|公务员|政务公开|宗教|寺庙|教堂",
}


def _key(s: str) -> str:
    return re.sub(r"\s", "", unicodedata.normalize("NFKC", s))


def out_of_scope_sets(data_dir: Path) -> dict[str, dict[str, list[tuple[str, str]]]]:
    """{"reply department" | "title keywords": {category: [(title, text), ...]}}, labelled messages left out."""
    base = data_dir / "teddy2020"
    with (base / "labelled_train.csv").open(encoding="utf-8", newline="") as fh:
        known = {_key(r["title"] + r["text"]) for r in csv.DictReader(fh)}
    sets: dict[str, dict[str, list[tuple[str, str]]]] = {"reply department": {}, "title keywords": {}}
    seen: set[str] = set()
    for name in ("replies.csv", "votes.csv"):
        with (base / name).open(encoding="utf-8", newline="") as fh:
            for r in csv.DictReader(fh):
                k = _key(r["title"] + r["text"])
                if k in known or k in seen:
                    continue
                seen.add(k)
                if "reply" in r:
                    head = unicodedata.normalize("NFKC", r["reply"][:300])
                    hits = [c for c, pat in DEPARTMENTS.items() if re.search(pat, head)]
                    if len(hits) == 1 and not re.search(TRAINED_DEPARTMENTS, head):
                        sets["reply department"].setdefault(hits[0], []).append((r["title"], r["text"]))
                title = unicodedata.normalize("NFKC", r["title"]).lower()
                hits = [c for c, pat in TITLE_KEYWORDS.items() if re.search(pat, title)]
                if len(hits) == 1:
                    sets["title keywords"].setdefault(hits[0], []).append((r["title"], r["text"]))
    return sets


def out_of_scope_confidences(clf: Classifier, data_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    return {
        kind: {
            c: np.array([clf.predict(t, title=ti).confidence for ti, t in msgs])
            for c, msgs in sorted(d.items())
        }
        for kind, d in out_of_scope_sets(data_dir).items()
    }


def bench_out_of_scope(clf: Classifier, data_dir: Path) -> dict:
    out: dict = {"review_below": clf.review_below}
    for kind, by_class in out_of_scope_confidences(clf, data_dir).items():
        rows = {c: _dist(conf, clf.review_below) for c, conf in by_class.items()}
        rows["ALL"] = _dist(np.concatenate(list(by_class.values())), clf.review_below)
        out[kind] = rows
    return out


def bench_tradeoff(clf: Classifier, data_dir: Path, folds: int = 5) -> list[dict]:
    """Per confidence threshold: share of held-out in-scope messages dispatched automatically, their
    accuracy, and the share of out-of-scope proxies that would be dispatched automatically."""
    from routing.training import TrainOptions, confidences, count_blocks, cross_validate, fit_temperature

    ex = load_labelled(data_dir)
    full = np.array([e.is_full for e in ex])
    y = np.array([e.label for e in ex])
    oof, classes = cross_validate(
        ex, count_blocks(ex, clf.cfg), clf.cfg, TrainOptions(folds=folds), log=lambda *a: None
    )
    t = fit_temperature(oof[full], np.searchsorted(classes, y[full]))
    conf = confidences(oof[full], t)
    correct = classes[oof[full].argmax(axis=1)] == y[full]
    ood = out_of_scope_confidences(clf, data_dir)
    dept = np.concatenate(list(ood["reply department"].values()))
    kw = np.concatenate(list(ood["title keywords"].values()))
    rows = []
    for thr in sorted({0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, round(clf.review_below, 3)}):
        auto = conf >= thr
        rows.append(
            {
                "threshold": thr,
                "in_scope_auto": round(float(auto.mean()), 3),
                "in_scope_auto_accuracy": round(float(correct[auto].mean()), 4) if auto.any() else None,
                "reply_department_auto": round(float((dept >= thr).mean()), 3),
                "title_keywords_auto": round(float((kw >= thr).mean()), 3),
            }
        )
    rows.append(
        {
            "in_scope_median": round(float(np.median(conf)), 3),
            "reply_department_median": round(float(np.median(dept)), 3),
            "title_keywords_median": round(float(np.median(kw)), 3),
        }
    )
    return rows


def _dist(conf: np.ndarray, thr: float) -> dict:
    return {
        "n": int(len(conf)),
        "median": round(float(np.median(conf)), 3),
        "p90": round(float(np.percentile(conf, 90)), 3),
        "share_auto": round(float((conf >= thr).mean()), 3),
        "share_ge_0.9": round(float((conf >= 0.9).mean()), 3),
    }


def bench_latency(clf: Classifier, data_dir: Path) -> dict:
    rows = [e for e in load_labelled(data_dir) if e.is_full]
    clf.predict("热线")
    ms, cpu = [], []
    for e in rows:
        t, c = time.perf_counter(), time.thread_time()
        clf.predict(e.text)
        cpu.append((time.thread_time() - c) * 1000)
        ms.append((time.perf_counter() - t) * 1000)
    lens = [len(e.text) for e in rows]
    return {
        "n": len(ms),
        # CPU time of the calling thread: what the call costs, without the waits for a
        # CPU that the shared machine adds to the wall-clock figures.
        "cpu_p50_ms": round(float(np.percentile(cpu, 50)), 3),
        "cpu_p99_ms": round(float(np.percentile(cpu, 99)), 3),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "max_ms": round(float(np.max(ms)), 3),
        "chars_p50": int(np.percentile(lens, 50)),
        "chars_p99": int(np.percentile(lens, 99)),
    }


def bench_baseline(data_dir: Path, folds: int = 5) -> dict:
    """TF-IDF (jieba words + char 1-3-grams) + LinearSVC, both files, same GroupKFold, full-text scores."""
    import jieba
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import f1_score
    from sklearn.model_selection import GroupKFold
    from sklearn.svm import LinearSVC

    ex = load_labelled(data_dir)
    tk = jieba.Tokenizer()
    words = [" ".join(tk.lcut(e.text)) if e.is_full else " ".join(e.tokens) for e in ex]
    chars = [e.text if e.is_full else "".join(e.tokens) for e in ex]
    y = np.array([e.label for e in ex])
    g = np.array([e.group for e in ex])
    full = np.array([e.is_full for e in ex])
    pred = np.empty(len(ex), dtype=object)
    for tr, te in GroupKFold(folds).split(y, y, g):
        vw = TfidfVectorizer(analyzer=str.split)
        vc = TfidfVectorizer(analyzer="char", ngram_range=(1, 3))
        xtr = sp.hstack([vw.fit_transform([words[i] for i in tr]), vc.fit_transform([chars[i] for i in tr])])
        xte = sp.hstack([vw.transform([words[i] for i in te]), vc.transform([chars[i] for i in te])])
        pred[te] = LinearSVC().fit(xtr, y[tr]).predict(xte)
    from sklearn.metrics import precision_recall_fscore_support

    labels = sorted(set(y))
    p, r, f, _ = precision_recall_fscore_support(y[full], pred[full], labels=labels)
    return {
        "macro_f1_full_text": round(float(f1_score(y[full], pred[full], average="macro")), 4),
        "macro_f1_all": round(float(f1_score(y, pred, average="macro")), 4),
        "per_class_full_text": {
            c: {"recall": round(float(r[i]), 3), "f1": round(float(f[i]), 3)} for i, c in enumerate(labels)
        },
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--model", type=Path, default=default_model_path())
    ap.add_argument("--latency", action="store_true")
    ap.add_argument("--out-of-scope", action="store_true")
    ap.add_argument("--baseline", action="store_true")
    ap.add_argument("--tradeoff", action="store_true")
    args = ap.parse_args()
    if not (args.data_dir / "teddy2020").is_dir():
        print(f"skipped: no teddy2020/ under {args.data_dir}", file=sys.stderr)
        return 0
    clf = Classifier.load(args.model)
    result: dict = {"model": clf.version}
    if args.latency:
        result["latency"] = bench_latency(clf, args.data_dir)
        print("latency", result["latency"], flush=True)
    if args.out_of_scope:
        result["out_of_scope"] = bench_out_of_scope(clf, args.data_dir)
        for kind in ("reply department", "title keywords"):
            for c, d in result["out_of_scope"][kind].items():
                print(kind, c, d, flush=True)
    if args.tradeoff:
        result["tradeoff"] = bench_tradeoff(clf, args.data_dir)
        for row in result["tradeoff"]:
            print("tradeoff", row, flush=True)
    if args.baseline:
        result["baseline"] = bench_baseline(args.data_dir)
        print("baseline", result["baseline"], flush=True)
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
