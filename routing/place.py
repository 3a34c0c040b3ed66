"""属地 evaluation: a test set rebuilt at evaluation time from the masked Teddy messages, the
scorer, and the two command-line entry points (``hotline routing place`` / ``place-eval``).

The Teddy messages mask place names (A市 = 长沙市, A3区 = 岳麓区 …; ``place_map.json`` maps the
codes back). :func:`build_place_testset` restores the real names and writes a CSV (outside the
repository: the texts may not be redistributed), columns ``text, county_code, variant``:

- ``full``: the restored message;
- ``no_county``: the county's name removed, kept only when a street/town of that county is still
  named: its official name, or its base (3+ characters, or 2 that are not a common word) standing
  as a name, not inside a longer division name (沙市 in 长沙市) and on jieba's word boundaries or
  before a suffix (资福 in 工资福利 is no town; 朝阳街道 names 朝阳街街道);
- ``no_suffix``: the county named without 区/县/市 (岳麓); counties whose base is a city's (长沙县 →
  长沙 means the city) or a single character (攸县) are left out;
- ``typo``: the ``no_county`` text with one character of each named street's base replaced by a
  random character drawn from the province's street names (seeded by the message id), never
  forming another known name. Random, not homophone, substitutions: harder than real typos, and
  a 2-character base then keeps a single character;
- ``outside`` (empty county_code): messages about one county of the province outside the region,
  to measure how often the resolver puts a county of the region on them.

A message is used when it names exactly one county-level code. Masking quirks: the masker replaced
short names inside other words (希望城管 → 希A6区管, 岳麓山 → A3区山, 雨花亭 → A5区亭, 芙蓉北路 →
A1区北路). A code whose base continues into a known division name (雨花亭街道, 芙蓉北路街道) or a
road (岳麓大道), or whose base and full name both cut through jieba's words (希望城管), is restored
to the bare base and not counted as a county mention. 湘 was masked as 楚: names of the
province's divisions written with 楚 (楚龙街道) are restored.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

from routing.gazetteer import (
    COMMON_FREQ,
    Division,
    Gazetteer,
    PlaceResult,
    _jieba_lexicon,
    base_name,
    load_division_rows,
)

__all__ = [
    "VARIANTS",
    "build_place_testset",
    "format_place",
    "format_place_eval",
    "place_eval",
    "place_eval_main",
    "place_main",
]

VARIANTS = ("full", "no_county", "no_suffix", "typo")
SOURCES = ("labelled_train.csv", "votes.csv", "replies.csv")
_ROAD = re.compile(r"(?:[东南西北中]?路|街(?!道)|大道|大街|巷)")


# ---- test set --------------------------------------------------------------------------------


def _messages(teddy: Path) -> Iterable[tuple[str, str]]:
    """(id, title + text) of every distinct message, in file order."""
    seen: set[str] = set()
    for name in SOURCES:
        path = teddy / name
        if not path.is_file():
            continue
        with open(path, encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                title, text = (row.get("title") or "").strip(), (row.get("text") or "").strip()
                body = text if not title or text.startswith(title) else f"{title}\n{text}"
                key = re.sub(r"\s+", "", body)
                if not key or key in seen:
                    continue
                seen.add(key)
                yield row.get("id") or hashlib.sha1(key.encode()).hexdigest()[:12], body


class _Restorer:
    def __init__(self, place_map: Mapping, rows: list[dict]) -> None:
        self.codes: dict[str, dict] = {}
        for m in place_map["mappings"]:
            self.codes[m["masked"]] = m
        keys = sorted(self.codes, key=len, reverse=True)
        self.pattern = re.compile(
            "|".join((r"(?<![A-Za-z0-9])" if k[0].isascii() else "") + re.escape(k) for k in keys)
        )
        divs = {r["code"]: _div(r) for r in rows}
        self.divs = divs
        self.names_after: dict[str, list[str]] = {}  # base -> known forms that start with it
        self.all_forms: set[str] = set()
        for d in divs.values():
            self.all_forms.add(d.name)
            b = base_name(d, divs)
            if b:
                self.all_forms.add(b)
        # 湘 was masked as 楚: names of the province containing 湘, as the masked text has them.
        self.chu = sorted(
            ((f.replace("湘", "楚"), f) for f in self.all_forms if "湘" in f and len(f) >= 3),
            key=lambda p: -len(p[0]),
        )
        self._tok = None
        self._longer: dict[str, list[str]] = {}

    def tokenizer(self):
        if self._tok is None:
            import jieba

            self._tok = jieba.Tokenizer()
            self._tok.initialize()
        return self._tok

    def aligned(self, left: str, word: str, right: str) -> bool:
        """Does ``word`` start and end on jieba token boundaries in left+word+right?"""
        bounds, pos = set(), 0
        for tok in self.tokenizer().cut(left + word + right, HMM=False):
            bounds.add(pos)
            pos += len(tok)
        bounds.add(pos)
        return len(left) in bounds and len(left) + len(word) in bounds

    def parse(self, text: str) -> tuple[list[tuple[int, int, dict, str]], str]:
        """Masked codes in ``text``: (start, end, mapping, role) with role county|street|road|quirk|area."""
        for masked, real in self.chu:
            if masked in text:
                text = text.replace(masked, real)
        out = []
        for m in self.pattern.finditer(text):
            info = self.codes[m.group(0)]
            role = "area"
            if info["level"] == "county":
                name = info["name"]
                base = self.base(info)
                after = text[m.end() : m.end() + 8]
                role = "county"
                if base:
                    if any(
                        f.startswith(base)
                        and len(f) > len(base)
                        and after.startswith(f[len(base) :])
                        and f != name
                        for f in self._forms_from(base)
                    ):
                        role = "street"  # 雨花亭街道, 芙蓉北路街道: a division named after the county
                    elif _ROAD.match(after):
                        role = "road"  # 芙蓉北路, 岳麓大道
                    else:
                        left = re.sub(r"[A-Za-z0-9]", "", text[max(0, m.start() - 6) : m.start()])
                        right = re.sub(r"[A-Za-z0-9]", "", after[:6])
                        if not self.aligned(left, name, right) and (
                            len(base) < 2 or not self.aligned(left, base, right)
                        ):
                            role = "quirk"  # 希望城管, 投资兴业: the mask hit an ordinary word
            out.append((m.start(), m.end(), info, role))
        return out, text

    def names_in(self, text: str, form: str, full: bool) -> bool:
        """Is ``form`` in ``text`` as a name, not as a piece of a longer name (沙市 in 长沙市) or, for
        a base, of ordinary words (资福 in 工资福利: it must fall on jieba's token boundaries, or be
        followed by a suffix: 朝阳街道)?"""
        start = text.find(form)
        while start >= 0:
            end = start + len(form)
            if not self._inside_longer(text, start, form):
                if full or text.startswith(("街道", "镇", "乡", "道"), end):
                    return True
                if self.aligned(text[max(0, start - 6) : start], form, text[end : end + 6]):
                    return True
            start = text.find(form, start + 1)
        return False

    def _inside_longer(self, text: str, start: int, form: str) -> bool:
        longer = self._longer.get(form)
        if longer is None:
            longer = self._longer[form] = [f for f in self.all_forms if form in f and f != form]
        for f in longer:
            k = f.find(form)
            while k >= 0:
                if start - k >= 0 and text.startswith(f, start - k):
                    return True
                k = f.find(form, k + 1)
        return False

    def _forms_from(self, base: str) -> list[str]:
        cache = self.names_after
        if base not in cache:
            cache[base] = [f for f in self.all_forms if f.startswith(base) and len(f) > len(base)]
        return cache[base]

    def base(self, info: Mapping) -> str | None:
        d = self.divs.get(info["code"]) or Division(info["code"], info["name"], "county", "")
        return base_name(d, self.divs)

    def render(
        self, text: str, spans: list[tuple[int, int, dict, str]], county_as: dict[str, str | None]
    ) -> str:
        """Replace masked codes: county mentions by ``county_as[code]`` (None = the full name)."""
        parts, last = [], 0
        for s, e, info, role in spans:
            parts.append(text[last:s])
            name = info["name"]
            if info["level"] == "county":
                base = self.base(info) or name
                if role == "county":
                    rep = county_as.get(info["code"])
                    parts.append(name if rep is None else rep)
                else:
                    parts.append(base)
            else:
                parts.append(name)
            last = e
        parts.append(text[last:])
        return "".join(parts)


def _div(r: Mapping[str, str]) -> Division:
    return Division(r["code"], r["name"], r["level"], r.get("parent_code") or "")


def build_place_testset(
    data_dir: Path,
    region: str,
    out: Path,
    *,
    seed: int = 20200512,
    rows: list[dict] | None = None,
    outside: bool = True,
) -> dict:
    """Write the place test set for ``region`` to ``out`` (CSV: text, county_code, variant).

    ``data_dir`` holds ``teddy2020/`` and ``divisions/``. With ``outside``, messages about one
    county of the province outside the region are kept too, as variant ``outside`` with an empty
    county_code: the resolver should give them no county, or a low confidence. Returns counts.
    """
    data_dir = Path(data_dir)
    teddy = data_dir / "teddy2020"
    if not (teddy / "place_map.json").is_file():
        raise FileNotFoundError(f"no teddy2020/place_map.json under {data_dir}")
    place_map = json.loads((teddy / "place_map.json").read_text(encoding="utf-8"))
    rows = rows if rows is not None else load_division_rows(data_dir, region)
    restorer = _Restorer(place_map, rows)
    divs = restorer.divs
    counties = {c: d for c, d in divs.items() if d.level == "county"}
    city_bases = {base_name(d) for d in divs.values() if d.level in ("city", "province")}
    streets_of: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    for d in divs.values():
        if d.level == "street":
            streets_of[d.parent_code].append((d.name, base_name(d)))
    short_bases = {b for lst in streets_of.values() for _, b in lst if b and len(b) == 2}
    common = {
        w
        for w, freq, tag in _jieba_lexicon()
        if w in short_bases and freq >= COMMON_FREQ and not tag.startswith("ns")
    }
    pool = sorted({ch for d in divs.values() if d.level == "street" for ch in (base_name(d) or "")})

    def named_streets(text: str, county: str) -> list[tuple[str, str]]:
        """(form found, base) of the county's streets named in ``text``."""
        found = []
        for name, base in streets_of.get(county, ()):
            if restorer.names_in(text, name, full=True):
                found.append((name, base or name))
            elif (
                base and (len(base) >= 3 or base not in common) and restorer.names_in(text, base, full=False)
            ):
                found.append((base, base))
        return found

    counts: Counter = Counter()
    skipped: Counter = Counter()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "county_code", "variant"])
        for mid, body in _messages(teddy):
            spans, text = restorer.parse(body)
            mentioned = {info["code"] for _, _, info, role in spans if role == "county"}
            if not mentioned:
                continue
            if len(mentioned) > 1:
                skipped["several counties"] += 1
                continue
            code = next(iter(mentioned))
            if code not in counties:
                skipped["unknown county"] += 1
                continue
            if not code.startswith(region):
                if outside:
                    w.writerow([restorer.render(text, spans, {}), "", "outside"])
                    counts["outside"] += 1
                else:
                    skipped["outside region"] += 1
                continue
            w.writerow([restorer.render(text, spans, {}), code, "full"])
            counts["full"] += 1
            base = base_name(counties[code], divs)
            if base and len(base) >= 2 and base not in city_bases:
                w.writerow([restorer.render(text, spans, {code: base}), code, "no_suffix"])
                counts["no_suffix"] += 1
            bare = restorer.render(text, spans, {code: ""})
            found = named_streets(bare, code)
            if not found:
                skipped["no street named"] += 1
                continue
            w.writerow([bare, code, "no_county"])
            counts["no_county"] += 1
            rng = random.Random(f"{seed}:{mid}")
            typo = bare
            for _form, sbase in sorted(set(found), key=lambda p: -len(p[0])):
                if sbase not in typo:
                    continue
                for _ in range(20):
                    pos = rng.randrange(len(sbase))
                    ch = rng.choice(pool)
                    new = sbase[:pos] + ch + sbase[pos + 1 :]
                    if ch != sbase[pos] and new not in restorer.all_forms:
                        typo = typo.replace(sbase, new)
                        break
            w.writerow([typo, code, "typo"])
            counts["typo"] += 1
    return {"rows": dict(counts), "skipped": dict(skipped), "out": str(out)}


# ---- evaluation ------------------------------------------------------------------------------


def _read_testset(csv_path: Path) -> list[dict]:
    with open(csv_path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and not {"text", "county_code", "variant"} <= set(rows[0]):
        raise ValueError(f"{csv_path}: expected columns text, county_code, variant")
    return rows


def place_eval(gazetteer: Gazetteer, csv_path: Path, *, repeats: int = 1) -> dict:
    """County top-1 accuracy of ``gazetteer`` on a test set built by :func:`build_place_testset`.

    Returns ``county_top1`` (all rows), ``per_variant`` {variant: top1}, ``n`` per variant, the
    share of rows given no county (``abstain``), accuracy by confidence band (``calibration``),
    top-1 and coverage at confidence >= 0.5 (``confident``), for rows about places outside the
    region (empty county_code) the share given a county at all and with confidence >= 0.5
    (``outside``; these rows count nowhere else), and the time of one ``resolve`` in ms
    (p50 / p99 / max / mean). With ``repeats`` > 1 each message is resolved that many times and
    the fastest run counts, which discounts other processes on a shared machine.
    """
    rows = _read_testset(Path(csv_path))
    hit: Counter = Counter()
    n: Counter = Counter()
    none: Counter = Counter()
    bands = (0.0, 0.2, 0.4, 0.6, 0.8)
    band_n: Counter = Counter()
    band_hit: Counter = Counter()
    confident = confident_hit = 0
    times: list[float] = []
    out_n = out_any = out_confident = 0
    for row in rows:
        v = row["variant"]
        best = float("inf")
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            r = gazetteer.resolve(row["text"])
            best = min(best, time.perf_counter() - t0)
        times.append(best * 1000)
        if not row["county_code"]:  # about a place outside the region
            out_n += 1
            out_any += r.county_code is not None
            out_confident += r.confidence >= 0.5
            continue
        n[v] += 1
        ok = r.county_code == row["county_code"]
        hit[v] += ok
        none[v] += r.county_code is None
        if r.county_code is not None:
            band = max(b for b in bands if r.confidence >= b)
            band_n[band] += 1
            band_hit[band] += ok
        if r.confidence >= 0.5:
            confident += 1
            confident_hit += ok
    total = sum(n.values())
    times.sort()

    def pct(p: float) -> float:
        return round(times[min(len(times) - 1, int(p * len(times)))], 3) if times else 0.0

    return {
        "region": gazetteer.region,
        "rows": total,
        "county_top1": round(sum(hit.values()) / total, 4) if total else 0.0,
        "per_variant": {v: round(hit[v] / n[v], 4) for v in _ordered(n)},
        "n": {v: n[v] for v in _ordered(n)},
        "abstain": {v: round(none[v] / n[v], 4) for v in _ordered(n)},
        "calibration": {
            f"{b:.1f}-{b + 0.2:.1f}": {
                "n": band_n[b],
                "top1": round(band_hit[b] / band_n[b], 4) if band_n[b] else None,
            }
            for b in bands
        },
        "confident": {
            "threshold": 0.5,
            "coverage": round(confident / total, 4) if total else 0.0,
            "top1": round(confident_hit / confident, 4) if confident else 0.0,
        },
        "outside": {
            "n": out_n,
            "given_a_county": round(out_any / out_n, 4) if out_n else None,
            "confident": round(out_confident / out_n, 4) if out_n else None,
        },
        "latency_ms": {
            "p50": pct(0.50),
            "p99": pct(0.99),
            "max": round(times[-1], 3) if times else 0.0,
            "mean": round(statistics.fmean(times), 3) if times else 0.0,
            "repeats": max(1, repeats),
        },
    }


def _ordered(n: Mapping[str, int]) -> list[str]:
    return [v for v in VARIANTS if v in n] + sorted(v for v in n if v not in VARIANTS)


def format_place_eval(report: Mapping) -> str:
    lines = [
        f"place resolution, region {report['region']}: {report['rows']} rows",
        f"county top-1 (all rows): {report['county_top1']:.3f}",
        f"{'variant':<10} {'n':>6} {'top-1':>7} {'no county':>10}",
    ]
    for v, acc in report["per_variant"].items():
        lines.append(f"{v:<10} {report['n'][v]:>6} {acc:>7.3f} {report['abstain'][v]:>10.3f}")
    lines.append(
        "confidence band: "
        + ", ".join(
            f"{b} n={c['n']} top-1={c['top1']:.3f}" for b, c in report["calibration"].items() if c["n"]
        )
    )
    c = report["confident"]
    lines.append(f"confidence >= {c['threshold']}: coverage {c['coverage']:.3f}, top-1 {c['top1']:.3f}")
    o = report.get("outside") or {}
    if o.get("n"):
        lines.append(
            f"outside the region ({o['n']} messages): given a county {o['given_a_county']:.3f}, "
            f"with confidence >= 0.5 {o['confident']:.3f}"
        )
    lat = report["latency_ms"]
    runs = f" (fastest of {lat['repeats']} runs each)" if lat.get("repeats", 1) > 1 else ""
    lines.append(
        f"latency per message{runs}: p50 {lat['p50']:.3f} ms, p99 {lat['p99']:.3f} ms, max {lat['max']:.3f} ms"
    )
    return "\n".join(lines)


def format_place(result: PlaceResult) -> str:
    if result.county_code is None:
        head = "no county of the region found"
    else:
        head = f"{result.county_name} {result.county_code}"
        if result.street_code:
            head += f" / {result.street_name} {result.street_code}"
    lines = [head, f"confidence {result.confidence:.2f}"]
    lines += [f"  evidence: {e}" for e in result.evidence]
    if result.alternatives:
        lines.append("  alternatives: " + ", ".join(f"{c} {s:.2f}" for c, s in result.alternatives))
    return "\n".join(lines)


def place_main(text: str, region: str, rows: Iterable[Mapping[str, str]], *, as_json: bool = False) -> int:
    """``hotline routing place TEXT``: print where TEXT says the matter is. Exit 0."""
    g = Gazetteer.from_rows(rows, region)
    r = g.resolve(text)
    print(json.dumps(r.to_dict(), ensure_ascii=False) if as_json else format_place(r))
    return 0


def place_eval_main(
    csv_path: Path, region: str, rows: Iterable[Mapping[str, str]], as_json: bool = False, *, repeats: int = 3
) -> int:
    """``hotline routing place-eval --data FILE.csv``: print the report; with ``as_json`` the last
    line is one JSON object. Each message is resolved ``repeats`` times and the fastest run is
    its latency (other processes' noise discounted). Exit 2 when the file is missing or malformed."""
    path = Path(csv_path)
    if not path.is_file():
        print(f"no test set at {path}: build it with scripts/build_place_testset.py", file=sys.stderr)
        return 2
    g = Gazetteer.from_rows(rows, region)
    try:
        report = place_eval(g, path, repeats=repeats)
    except (ValueError, KeyError) as e:
        print(f"cannot read {path}: {e}", file=sys.stderr)
        return 2
    print(format_place_eval(report))
    if as_json:
        print(json.dumps(report, ensure_ascii=False))
    return 0
