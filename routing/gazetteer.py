"""属地 gazetteer: find the county (区/县/市) and street/town (街道/镇/乡) named in free Chinese text.

A :class:`Gazetteer` is built once from division rows (``code,name,level,parent_code`` as in the
bundled ``divisions_43.csv``) and scoped to a *region*: a division code prefix such as ``4301``
(长沙市) or ``43`` (湖南省). Only counties inside the region are answers; every other division
loaded (the rest of the province, other cities, other provinces) is still recognised, as evidence
*against* the region, so "株洲市荷塘区" yields no 长沙 county instead of a guess.

How a text is read (every index is built in ``__init__``; nothing is compiled per call):

1. Exact scan. Every surface form of every division sits in a dict keyed by its first two
   characters, longest first. The text's bigrams, as a set, are intersected with those keys, so
   Python only visits positions where some name starts; there the longest form wins
   (leftmost-longest, no overlaps). Forms: the official name (岳麓区, 望月湖街道); the name
   without its suffix (岳麓, 望月湖; 城步苗族自治县 → 城步; 岳阳市屈原管理区 → 屈原); the base
   with the other suffixes (望城县 and 宁乡县: upgraded counties keep their old names in people's
   mouths; 星沙镇; 朝阳街道 for 朝阳街街道); variant characters (橘子洲 for 桔子洲). A county base
   that is a city's base (长沙县 → 长沙) is not a county form: bare 长沙 is the city. A form of
   several levels means the highest (岳麓 is the district, not 岳麓街道); an official name beats
   an alias, except that the region's alias stands beside official names outside the region.
2. Weights. A full county name is the strongest clue (3), then a street's full name (2.5), a
   street base of 3+ characters (望月湖, 2) or a county base (开福, 2), a 2-character street base
   (东塘, 1.2). jieba's dictionary, read once, marks bases that are ordinary words (路口, 会同,
   新建: × 0.15) or often-heard places elsewhere (河西, 永安: × 0.5). A base followed by
   路/街/大道/巷 is a road (韶山北路, 芙蓉中路: × 0.25); a short base inside a longer dictionary
   word (十字路口) is skipped. Repeats add a quarter each, up to four. A form shared by several
   divisions splits its weight.
3. Typos. When no street of the region is named exactly, windows one substitution away (Hamming
   distance 1, with ``rapidfuzz``) from a name of 3+ characters are looked up through a bigram
   and skip-bigram index. A suffix must be intact (长沙的 is not 长沙县); road-named bases
   (东风路) are left out; a window is refused when its odd character is a grammar word (的水塘) or
   makes a word with a neighbour (望社区), when the rest is a word of its own (程花园), when only
   a generic term differs (回龙村 vs 回龙铺), when it lies inside a dictionary word (东方航空),
   when it is itself a dictionary word (开发区), or when the pattern fits four names or more
   (?家塘). Names of the region are preferred to those outside it; a window close to two names of
   the region splits, to more says nothing. A typo counts 0.5-0.6 of the exact name.
4. Decision. County scores add up (street clues count for their county); naming a street with
   its county, or naming the county's city, adds 1. With s1 the best score, ``confidence = s1 /
   (all county scores + outside-region evidence) * (1 - exp(-s1 / 2))``: low when candidates
   compete, when the text points outside the region, or when the only clue is weak. The street
   is reported only when it lies in the chosen county.

Only the first ``max_chars`` characters (3,000) are read: on the Teddy messages a longer read
changes no answer, and the cap bounds the time spent on pathological input.
"""

from __future__ import annotations

import csv
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rapidfuzz.distance import Hamming

__all__ = ["Division", "Gazetteer", "PlaceResult", "base_name", "load_division_rows"]

MAX_CHARS = 3000

_LEXICON_CACHE: dict[int, tuple] = {}

_LEVEL_RANK = {"province": 0, "city": 1, "county": 2, "street": 3}

# Weights of one mention, by division level and the kind of surface form matched.
W_COUNTY_FULL = 3.0
W_COUNTY_ALT = 2.5  # base + another county suffix: 望城县, 宁乡县
W_COUNTY_BASE = 2.0
W_STREET_FULL = 2.5
W_STREET_ALT = 2.0
W_STREET_BASE3 = 2.0  # base of 3+ characters: 望月湖
W_STREET_BASE2 = 1.2  # base of 2 characters: 东塘
W_AREA_FULL = 3.0  # city / province, used as outside-region evidence and city bonus
W_AREA_BASE = 2.0
COMMON_WORD = 0.15  # base that is an ordinary word in jieba's dictionary
KNOWN_WORD = 0.5  # base that jieba knows as a place fairly often: 河西, 永安, 北山
ROAD = 0.25  # base followed by 路/街/大道/巷: a road named after the place
FUZZY_FULL = 0.6
FUZZY_BASE = 0.5
MAX_TYPO_CANDIDATES = 2  # a window as close to more names says nothing (新港镇 ~ 23 towns)
GENERIC_PATTERN = 4  # a pattern that fits this many names (?家塘, 新?镇) is no clue
OUTSIDE_SHARED = 0.25  # weight of the outside readings of a name the region also has
REPEAT = 0.25  # each repeat of the same clue, up to MAX_REPEATS
MAX_REPEATS = 4
BONUS_COUNTY_AND_STREET = 1.0
BONUS_CITY = 1.0
CONF_SCALE = 2.0

# jieba's dictionary: a word not tagged as a place (ns) this frequent is an ordinary word, and
# so is any word more frequent than COMMON_FREQ_ANY (its tags are unreliable: 南北, 新建 are
# "ns"); a place word above KNOWN_FREQ is a well-known name of somewhere, or a word, as often.
COMMON_FREQ = 100
COMMON_FREQ_ANY = 1000
KNOWN_FREQ = 200
# Two-character words this frequent block a typo match through their characters.
BIGRAM_FREQ = 20

_COUNTY_SUFFIXES = ("自治县", "自治旗", "新区", "矿区", "林区", "特区", "区", "县", "市", "旗")
_ZONE_SUFFIXES = ("高新技术产业园区", "经济技术开发区", "经济开发区", "管理区", "示范区", "开发区")
_STREET_SUFFIXES = ("街道办事处", "办事处", "街道", "民族乡", "镇", "乡", "苏木")
_AREA_SUFFIXES = (
    "特别行政区",
    "维吾尔自治区",
    "壮族自治区",
    "回族自治区",
    "自治区",
    "自治州",
    "地区",
    "盟",
    "省",
    "市",
)
_ETHNIC = re.compile(r"^(.{2,}?)(?:[^族]{1,4}族)+自治(?:县|州|旗)$")
_PLACEHOLDER = {"市辖区", "县", "省直辖县级行政区划", "自治区直辖县级行政区划", "省直辖县级市"}
# Variant characters people write for characters in official names.
_CHAR_ALIASES = {"桔": "橘", "㮾": "榔", "濑": "瀨"}
_HAN_ONLY = re.compile(r"[\u3400-\u9fff]+")
# Characters of grammar, never the odd one out of a misspelt name (的水塘 is not 清水塘).
_FUNCTION_CHARS = frozenset("的了是在和与或及把被从到对向为这那个我你他她它们有也都就还又而但不没很")
# Generic terms that end place and feature names (a village 村, a bridge 桥, a pond 塘 …).
_GENERIC_CHARS = frozenset(
    "村组里桥园路街巷山湖塘坪冲湾岭洲区县市镇乡庄院楼苑城场站口铺坳垸港河江溪坡岗港寺庙门堆"
)
_ROAD_END = re.compile(r"(?:路|街|道|巷)$")
_ROAD_AFTER = re.compile(r"[东南西北中]?(?:路|街(?!道)|大道|大街|巷)")


@dataclass(frozen=True, slots=True)
class Division:
    code: str
    name: str
    level: str  # province | city | county | street
    parent_code: str


@dataclass(frozen=True)
class PlaceResult:
    """Where a text says the matter is. Empty (all None, confidence 0) when it names no county."""

    county_code: str | None = None
    county_name: str | None = None
    street_code: str | None = None
    street_name: str | None = None
    confidence: float = 0.0
    evidence: list[str] = field(default_factory=list)
    alternatives: list[tuple[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "county_code": self.county_code,
            "county_name": self.county_name,
            "street_code": self.street_code,
            "street_name": self.street_name,
            "confidence": self.confidence,
            "evidence": list(self.evidence),
            "alternatives": [list(a) for a in self.alternatives],
        }


@dataclass(frozen=True, slots=True)
class _Target:
    code: str
    name: str
    level: str
    county: str | None  # county code (county and street targets)
    city: str | None  # city code, when known
    inside: bool  # a county/street of the region, or a city/province inside it
    ancestor: bool  # the region itself or a division containing it (neutral evidence)


@dataclass(frozen=True, slots=True)
class _Hit:
    target: int  # index into Gazetteer._targets
    kind: str  # full | alt | base
    weight: float


def _strip(name: str, suffixes: Iterable[str], min_len: int = 2) -> str | None:
    for s in suffixes:
        if name.endswith(s) and len(name) - len(s) >= min_len:
            return name[: -len(s)]
    return None


def load_division_rows(data_dir: Path, region: str) -> list[dict]:
    """Division rows (code,name,level,parent_code) from ``data_dir/divisions/*.csv``.

    The province of ``region`` is read in full; provinces and cities elsewhere are read too, so
    that a text naming another city counts against the region. ``data_dir`` may be the shared data
    folder (holding ``divisions/``) or the divisions folder itself.
    """
    src = data_dir / "divisions" if (data_dir / "divisions").is_dir() else data_dir
    if not (src / "areas.csv").is_file():
        raise FileNotFoundError(f"no divisions CSVs (areas.csv) in {src}")
    prov = region[:2]
    rows: list[dict] = []

    def read(name: str) -> list[dict]:
        with open(src / name, encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))

    rows += [
        {"code": r["code"], "name": r["name"], "level": "province", "parent_code": ""}
        for r in read("provinces.csv")
    ]
    rows += [
        {"code": r["code"], "name": r["name"], "level": "city", "parent_code": r["provinceCode"]}
        for r in read("cities.csv")
    ]
    rows += [
        {"code": r["code"], "name": r["name"], "level": "county", "parent_code": r["cityCode"]}
        for r in read("areas.csv")
        if r["provinceCode"] == prov
    ]
    rows += [
        {"code": r["code"], "name": r["name"], "level": "street", "parent_code": r["areaCode"]}
        for r in read("streets.csv")
        if r["provinceCode"] == prov
    ]
    return rows


def _jieba_lexicon() -> Iterable[tuple[str, int, str]]:
    """(word, freq, tag) of jieba's bundled dictionary (read, not loaded into a tokenizer)."""
    import jieba

    with jieba.get_dict_file() as f:
        data = f.read().decode("utf-8")
    for line in data.splitlines():
        parts = line.split(" ")
        if len(parts) >= 2:
            yield parts[0], int(parts[1]), parts[2] if len(parts) > 2 else ""


class Gazetteer:
    """Place resolution for one region. Build once (≈1 s: it reads jieba's dictionary), then
    :meth:`resolve` is pure and thread-safe."""

    def __init__(
        self,
        divisions: Iterable[Division],
        region: str,
        *,
        lexicon: Iterable[tuple[str, int, str]] | None = None,
        use_lexicon: bool = True,
        max_chars: int = MAX_CHARS,
        typos: str = "fallback",
    ) -> None:
        region = str(region).strip()
        if not region.isdigit():
            raise ValueError(f"region must be a division code prefix such as 4301, not {region!r}")
        self.region = region
        self.max_chars = max_chars
        if typos not in ("fallback", "always", "never"):
            raise ValueError("typos must be fallback, always or never")
        self.typos = typos
        divs = {
            d.code: d for d in divisions if d.name and d.name not in _PLACEHOLDER and d.level in _LEVEL_RANK
        }
        self._divisions = divs
        if not any(c.startswith(region) and d.level in ("county", "street") for c, d in divs.items()):
            raise ValueError(f"no county or street of region {region} in the rows given")
        self.region_name = divs[region].name if region in divs else region

        # ---- targets ------------------------------------------------------------------------
        self._targets: list[_Target] = []
        index_of: dict[str, int] = {}
        for code in sorted(divs):
            d = divs[code]
            county = city = None
            if d.level == "street":
                county = d.parent_code
                parent = divs.get(county)
                city = parent.parent_code if parent else None
            elif d.level == "county":
                county, city = code, d.parent_code
            elif d.level == "city":
                city = code
            if d.level in ("county", "street"):
                inside, ancestor = (county or "").startswith(region), False
            else:
                inside, ancestor = code.startswith(region) and code != region, region.startswith(code)
            index_of[code] = len(self._targets)
            self._targets.append(_Target(code, d.name, d.level, county, city, inside, ancestor))
        self._index_of = index_of

        # ---- surface forms ------------------------------------------------------------------
        area_bases = {
            b: d.code
            for d in divs.values()
            if d.level in ("province", "city")
            for b in [_area_base(d.name)]
            if b
        }
        official = {d.name for d in divs.values()}
        forms: dict[str, dict[int, tuple[str, float]]] = defaultdict(dict)

        def add(variant: str, code: str, kind: str, weight: float) -> None:
            if len(variant) < 2:
                return
            for v in {variant, *(_alias(variant))}:
                slot = forms[v]
                t = index_of[code]
                if t not in slot or slot[t][1] < weight:
                    slot[t] = (kind, weight)

        for d in divs.values():
            if d.level in ("province", "city"):
                add(d.name, d.code, "full", W_AREA_FULL)
                b = _area_base(d.name)
                if b:
                    add(b, d.code, "base", W_AREA_BASE)
            elif d.level == "county":
                add(d.name, d.code, "full", W_COUNTY_FULL)
                for b in _county_bases(d.name, divs, d):
                    if b in area_bases:  # 长沙县 -> 长沙 is the city
                        continue
                    add(b, d.code, "base", W_COUNTY_BASE)
                    for s in ("区", "县", "市"):
                        if b + s not in official:
                            add(b + s, d.code, "alt", W_COUNTY_ALT)
            else:
                add(d.name, d.code, "full", W_STREET_FULL)
                b = _strip(d.name, _STREET_SUFFIXES)
                if b:
                    add(b, d.code, "base", W_STREET_BASE3 if len(b) >= 3 else W_STREET_BASE2)
                    alts = [b + s for s in ("街道", "镇", "乡")]
                    if b.endswith("街"):
                        alts.append(b + "道")  # 朝阳街街道 is called 朝阳街道
                    for a in alts:
                        if a != d.name:
                            add(a, d.code, "alt", W_STREET_ALT)

        # A form naming divisions of different levels means the highest one (长沙 = the city,
        # 岳麓 = the district, not 岳麓街道); an official full name beats an alias or a base,
        # except that an alias inside the region stands beside official names outside it
        # (朝阳街道: 芙蓉区's 朝阳街街道 as people say it, and 朝阳街道 of 益阳 and 永州).
        names: dict[str, list[_Hit]] = {}
        tg = self._targets
        for v, slot in forms.items():
            best = min(_LEVEL_RANK[tg[t].level] for t in slot)
            hits = [(t, k, w) for t, (k, w) in slot.items() if _LEVEL_RANK[tg[t].level] == best]
            fulls = [h for h in hits if h[1] == "full"]
            if fulls:
                if any(tg[t].inside for t, _, _ in fulls):
                    hits = fulls
                else:
                    hits = fulls + [h for h in hits if h[1] != "full" and tg[h[0]].inside]
            names[v] = [_Hit(t, k, w) for t, k, w in sorted(hits)]

        # ---- typo index: names of 3+ characters, by bigram and skip-bigram --------------------
        fuzzy_names: list[tuple[str, int, tuple[_Hit, ...]]] = []  # (name, editable prefix len, hits)
        for v, hits in names.items():
            if len(v) < 3 or any(h.kind == "alt" for h in hits):
                continue
            if hits[0].kind == "full":
                d = self._targets[hits[0].target]
                base = (
                    _strip(d.name, _STREET_SUFFIXES)
                    if d.level == "street"
                    else _strip(d.name, _COUNTY_SUFFIXES + _AREA_SUFFIXES)
                )
                editable = len(base) if base and v.endswith(d.name[len(base) :]) else len(v)
                if editable < 2:
                    continue
            elif _ROAD_END.search(v):
                continue  # 东风路, 通泰街: every other road one character away would match
            else:
                editable = len(v)
            fuzzy_names.append((v, editable, tuple(hits)))
        # A name with one substitution keeps its first two characters (substitution at position
        # 2+), or its 2nd and 3rd (at position 0), or its 1st and 3rd (at position 1).
        fz: dict[str, list[tuple[int, int]]] = defaultdict(list)  # bigram -> (name, offset)
        fz_skip: dict[str, list[int]] = defaultdict(list)  # 1st + 3rd character -> name
        for i, (v, _editable, _) in enumerate(fuzzy_names):
            fz[v[0:2]].append((i, 0))
            fz[v[1:3]].append((i, 1))
            fz_skip[v[0] + v[2]].append(i)
        self._fuzzy_names = fuzzy_names
        self._fz = dict(fz)
        self._fz_skip = dict(fz_skip)
        self._fz_keys = frozenset(fz)
        self._fz_skip_keys = frozenset(fz_skip)

        # ---- jieba's dictionary: common words, words containing a short name, typo look-alikes --
        self._containers: dict[str, frozenset[str]] = {}
        self._fuzzy_reject: frozenset[str] = frozenset()
        self._common: frozenset[str] = frozenset()
        self._known: frozenset[str] = frozenset()
        self._common_street: frozenset[str] = frozenset()
        self._bigram_words: frozenset[str] = frozenset()
        self._frequent_bigrams: frozenset[str] = frozenset()
        self._fuzzy_containers: dict[str, frozenset[str]] = {}
        if lexicon is not None:
            names = self._apply_lexicon(names, lexicon)
        elif use_lexicon:
            # The same rows give the same forms whatever the region: reuse the lexicon pass.
            key = hash((tuple(sorted(names)), tuple(sorted(v for v, _, _ in self._fuzzy_names))))
            cached = _LEXICON_CACHE.get(key)
            if cached is None:
                self._apply_lexicon(names, _jieba_lexicon())
                cached = _LEXICON_CACHE[key] = self._lexicon_state()
                while len(_LEXICON_CACHE) > 4:
                    _LEXICON_CACHE.pop(next(iter(_LEXICON_CACHE)))
            self.__dict__.update(cached)
            names = self._discount_common(names)

        by_bigram: dict[str, list[tuple[str, tuple[_Hit, ...]]]] = defaultdict(list)
        for v, hits in names.items():
            by_bigram[v[:2]].append((v, tuple(hits)))
        for lst in by_bigram.values():
            lst.sort(key=lambda e: -len(e[0]))
        self._names = names
        self._by_bigram = dict(by_bigram)
        self._bigram_keys = frozenset(by_bigram)

    # ------------------------------------------------------------------------------------------
    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, str]], region: str, **kw) -> Gazetteer:
        """Build from rows with ``code,name,level,parent_code`` (the bundled divisions CSV)."""
        divs = [
            Division(
                str(r["code"]).strip(),
                str(r["name"]).strip(),
                str(r["level"]).strip(),
                str(r.get("parent_code") or "").strip(),
            )
            for r in rows
        ]
        return cls(divs, region, **kw)

    @classmethod
    def from_data_dir(cls, data_dir: Path, region: str, **kw) -> Gazetteer:
        """Build from ``data_dir/divisions/{provinces,cities,areas,streets}.csv`` for any province."""
        return cls.from_rows(load_division_rows(Path(data_dir), str(region)), str(region), **kw)

    @classmethod
    def from_csv(cls, path: Path, region: str, **kw) -> Gazetteer:
        with open(path, encoding="utf-8", newline="") as f:
            return cls.from_rows(list(csv.DictReader(f)), region, **kw)

    # ------------------------------------------------------------------------------------------
    def _apply_lexicon(self, names: dict[str, list[_Hit]], lexicon: Iterable[tuple[str, int, str]]) -> dict:
        """Use a word list with frequencies and POS tags (jieba's dictionary) three ways:
        bases that are common words are discounted; words containing a short name (十字路口 for
        路口) are kept to skip such hits; words one substitution from a name (开发区 ~ 开福区)
        are kept so that the typo pass does not take them for the name."""
        short2 = {v for v in names if len(v) == 2}
        short3 = {v for v in names if len(v) == 3}
        containers: dict[str, set[str]] = defaultdict(set)
        reject: set[str] = set()
        fuzzy_containers: dict[str, set[str]] = defaultdict(set)
        fuzzy_lengths = {len(v) for v, _, _ in self._fuzzy_names}
        fz, fz_skip = self._fz, self._fz_skip
        common: set[str] = set()
        known: set[str] = set()
        common_street: set[str] = set()
        bigrams: set[str] = set()
        frequent: set[str] = set()
        for word, freq, tag in lexicon:
            n = len(word)
            if n < 2 or n > 6:
                continue
            if n == 2 and freq >= BIGRAM_FREQ:
                bigrams.add(word)
                if freq >= COMMON_FREQ:
                    frequent.add(word)
            if word in names:
                place = tag.startswith("ns")
                if freq >= COMMON_FREQ and not place:
                    common.add(word)
                elif freq >= COMMON_FREQ_ANY:
                    common_street.add(word)
                elif freq >= KNOWN_FREQ:
                    known.add(word)
                continue
            if n == 2:
                continue
            if n <= 5 and not tag.startswith("ns"):
                for p in range(n - 1):
                    sub = word[p : p + 2]
                    if sub in short2:
                        containers[sub].add(word)
                if n >= 4:
                    for p in range(n - 2):
                        sub = word[p : p + 3]
                        if sub in short3:
                            containers[sub].add(word)
            for size in fuzzy_lengths:
                # the word itself (开发区 ~ 开福区) or a piece of it (东方航空 holds 东方航 ~ 东方红)
                for p in range(n - size + 1):
                    piece = word[p : p + size]
                    if (
                        piece[0:2] in fz or piece[1:3] in fz or piece[0] + piece[2] in fz_skip
                    ) and self._near_name(piece):
                        if size == n:
                            reject.add(word)
                        elif not tag.startswith("ns"):
                            fuzzy_containers[piece].add(word)
        self._containers = {k: frozenset(v) for k, v in containers.items()}
        self._fuzzy_reject = frozenset(reject)
        self._fuzzy_containers = {k: frozenset(v) for k, v in fuzzy_containers.items()}
        self._common = frozenset(common)
        self._known = frozenset(known)
        self._common_street = frozenset(common_street)
        self._frequent_bigrams = frozenset(frequent)
        self._bigram_words = frozenset(bigrams)
        return self._discount_common(names)

    _LEXICON_FIELDS = (
        "_common",
        "_known",
        "_common_street",
        "_containers",
        "_fuzzy_reject",
        "_fuzzy_containers",
        "_bigram_words",
        "_frequent_bigrams",
    )

    def _lexicon_state(self) -> dict:
        return {k: getattr(self, k) for k in self._LEXICON_FIELDS}

    def _discount_common(self, names: dict[str, list[_Hit]]) -> dict[str, list[_Hit]]:
        out = {}
        tg = self._targets
        for v, hits in names.items():
            out[v] = [
                _Hit(h.target, h.kind, h.weight * self._word_factor(v, tg[h.target].level))
                if h.kind == "base"
                else h
                for h in hits
            ]
        return out

    def _word_factor(self, base: str, level: str) -> float:
        """How much a bare base counts, by what jieba's dictionary says of it. City and province
        bases (长沙, 株洲) always count; a county base only loses when it is an ordinary word (会同,
        凤凰); a street base also when it is very frequent (南北, 新建) or a known place (河西)."""
        if level in ("province", "city"):
            return 1.0
        if base in self._common:
            return COMMON_WORD
        if level == "street":
            if base in self._common_street:
                return COMMON_WORD
            if base in self._known:
                return KNOWN_WORD
        return 1.0

    def _fuzzy_candidates(self, text: str, bigrams: set[str] | None = None) -> list[tuple[int, int]]:
        """(name index, window start) of every window of ``text`` that is one substitution away
        from a name of the typo index (or equal to it: callers skip exact windows).

        The text's bigrams and skip-bigrams are intersected with the index keys as sets, so the
        cost per character is a C-level set insert, and Python only loops over actual hits.
        """
        out = []
        n = len(text)
        fz, fz_skip, names = self._fz, self._fz_skip, self._fuzzy_names
        if bigrams is None:
            bigrams = set(map(str.__add__, text, text[1:]))
        found = bigrams & self._fz_keys
        for key in found:
            i = text.find(key)
            while i >= 0:
                for ni, off in fz[key]:
                    out.append((ni, i - off))
                i = text.find(key, i + 1)
        found = set(map(str.__add__, text, text[2:])) & self._fz_skip_keys
        for key in found:
            a, b = key
            i = text.find(a)
            while 0 <= i < n - 2:
                if text[i + 2] == b:
                    out.extend((ni, i) for ni in fz_skip[key])
                i = text.find(a, i + 1)
        ok = []
        for ni, start in set(out):
            v, editable, _ = names[ni]
            m = len(v)
            if start < 0 or start + m > n:
                continue
            window = text[start : start + m]
            if Hamming.distance(window, v, score_cutoff=1) == 1 and (
                editable == m or window[editable:] == v[editable:]
            ):
                ok.append((ni, start))
        return ok

    def _near_name(self, word: str) -> bool:
        n = len(word)
        return any(
            start == 0 and len(self._fuzzy_names[ni][0]) == n for ni, start in self._fuzzy_candidates(word)
        )

    # ------------------------------------------------------------------------------------------
    def words(self) -> list[str]:
        """Names of the region's counties and streets, with and without suffixes (岳麓区, 岳麓,
        望月湖街道, 望月湖, and variant spellings such as 橘子洲), and of the region's city: a jieba
        user dictionary. Bases that are ordinary words (路口, 先锋) are left out: jieba knows them
        already, and declaring them places would only bias its cuts."""
        out = set()
        for v, hits in self._names.items():
            for h in hits:
                t = self._targets[h.target]
                mine = t.inside and t.level in ("county", "street") or t.ancestor and t.level == "city"
                if not mine or h.kind == "alt":
                    continue
                if h.kind == "base" and self._word_factor(v, t.level) < 1.0:
                    continue
                out.add(v)
        for t in self._targets:
            if t.inside and t.level in ("county", "street"):
                out.add(t.name)
        return sorted(out)

    def counties(self) -> dict[str, str]:
        """The region's counties: code -> name."""
        return {t.code: t.name for t in self._targets if t.level == "county" and t.inside}

    def streets(self, county_code: str | None = None) -> dict[str, str]:
        return {
            t.code: t.name
            for t in self._targets
            if t.level == "street" and t.inside and (county_code is None or t.county == county_code)
        }

    def division(self, code: str) -> Division | None:
        return self._divisions.get(code)

    def __repr__(self) -> str:
        return f"<Gazetteer {self.region} {self.region_name}: {len(self.counties())} counties, {len(self._names)} forms>"

    # ------------------------------------------------------------------------------------------
    def _scan(self, t: str, bigrams: set[str]) -> list[tuple[int, int, str, tuple[_Hit, ...], float]]:
        """Exact mentions, leftmost-longest without overlaps: (start, end, form, hits, multiplier).

        ``bigrams`` is the set of the text's bigrams: intersecting it with the index keys finds the
        few positions worth a look without a Python-level loop over every character.
        """
        by_bigram, containers = self._by_bigram, self._containers
        positions = []
        for key in bigrams & self._bigram_keys:
            i = t.find(key)
            while i >= 0:
                positions.append(i)
                i = t.find(key, i + 1)
        positions.sort()
        out, last = [], 0
        for i in positions:
            if i < last:
                continue
            for v, hits in by_bigram[t[i : i + 2]]:
                if t.startswith(v, i):
                    j = i + len(v)
                    mult = 1.0
                    if hits[0].kind == "base":
                        box = containers.get(v)
                        if box and _inside_word(t, i, j, box):
                            break  # part of a longer ordinary word: 十字路口
                        if _ROAD_AFTER.match(t, j):
                            mult = ROAD
                    out.append((i, j, v, hits, mult))
                    last = j
                    break
        return out

    def _typos(
        self, t: str, covered: bytearray, bigrams: set[str] | None = None
    ) -> list[tuple[int, int, str, tuple[_Hit, ...], float]]:
        """Windows one substitution away from a name (see the module docstring), non-overlapping.

        A window is not taken for a misspelt name when: the odd character is a grammar word or
        makes a word with a neighbour (望社区 = 望 + 社区); the rest of the window is itself a
        word (东方新 = 东方 + 新, 程花园); the odd character and the name's differ only as generic
        terms (回龙村 is a village, not 回龙铺); the window lies inside a longer word (东方航空);
        or the pattern is generic (?家塘 fits three names or more). A window as close to two
        names of the region splits its weight; one close to names elsewhere only counts if single.
        """
        names, exact = self._fuzzy_names, self._names
        by_window: dict[tuple[int, int], dict[int, int]] = defaultdict(dict)  # window -> {name: pos}
        for ni, start in self._fuzzy_candidates(t, bigrams):
            v = names[ni][0]
            end = start + len(v)
            by_window[(start, end)][ni] = next(k for k in range(len(v)) if t[start + k] != v[k])
        out, last = [], -1
        targets = self._targets
        for (start, end), slot in sorted(by_window.items(), key=lambda kv: (kv[0][0], kv[0][0] - kv[0][1])):
            if start < last:
                continue
            window = t[start:end]
            if any(covered[start:end]) or window in exact or not _HAN_ONLY.fullmatch(window):
                continue
            per_pos: dict[int, set] = defaultdict(set)
            for ni, p in slot.items():
                per_pos[p].add(tuple(h.target for h in names[ni][2]))
            if max(len(v) for v in per_pos.values()) >= GENERIC_PATTERN:
                continue  # a generic pattern: 新?镇, ?家塘
            nis = [ni for ni, p in slot.items() if self._plausible_typo(t, start, end, names[ni], p)]
            if not nis:
                continue
            # The text is about the region more often than not: a window as close to a name of the
            # region as to names elsewhere reads as the region's.
            inside = [ni for ni in nis if any(targets[h.target].inside for h in names[ni][2])]
            nis = inside or nis
            if len({tuple(h.target for h in names[ni][2]) for ni in nis}) > (
                MAX_TYPO_CANDIDATES if inside else 1
            ):
                continue
            last = end
            hits: dict[int, _Hit] = {}
            for ni in nis:
                for h in names[ni][2]:
                    hits.setdefault(h.target, h)
            v = "|".join(dict.fromkeys(names[ni][0] for ni in nis))
            mult = FUZZY_FULL if names[nis[0]][2][0].kind == "full" else FUZZY_BASE
            out.append((start, end, window + "≈" + v, tuple(hits.values()), mult))
        return out

    def _plausible_typo(self, t: str, start: int, end: int, name: tuple, p: int) -> bool:
        v, editable, _ = name
        window = t[start:end]
        bigrams = self._bigram_words
        if window in self._fuzzy_reject or window[p] in _FUNCTION_CHARS:
            return False
        if window[max(0, p - 1) : p + 1] in bigrams or window[p : p + 2] in bigrams:
            return False  # the odd character makes a word with a neighbour: 望社区 = 望 + 社区
        if len(v) == 3 and (window[1:] if p == 0 else window[:2] if p == 2 else "") in self._frequent_bigrams:
            return False  # the rest is a word of its own: 程花园 = 程 + 花园, 东方新 = 东方 + 新
        if editable == 2 < len(v) and window[1:3] in bigrams:
            return False  # what is left of a 2-character base makes a word with the suffix: 加城区
        if p == len(v) - 1 and window[p] in _GENERIC_CHARS and v[p] in _GENERIC_CHARS:
            return False  # another feature of the same stem: 回龙村 vs 回龙铺
        box = self._fuzzy_containers.get(window)
        return not (box and _inside_word(t, start, end, box))  # 东方航空 is not 东方红

    def resolve(self, text: str | None) -> PlaceResult:
        """The county (and street) of the region named in ``text``, with a confidence in [0, 1]."""
        if not text:
            return PlaceResult()
        t = text[: self.max_chars]
        bigrams = set(map(str.__add__, t, t[1:]))
        mentions = self._scan(t, bigrams)
        targets = self._targets
        if (
            self.typos == "always"
            or self.typos == "fallback"
            and not any(
                targets[h.target].inside and targets[h.target].level == "street"
                for m in mentions
                for h in m[3]
            )
        ):
            # Typos are looked for only where no street of the region is named exactly; a weak exact
            # hit (a 2-character base: 马桥 in 拉马桥) does not hide a misspelt longer name.
            covered = bytearray(len(t))
            for s, e, form, hits, _ in mentions:
                if len(form) > 2 or hits[0].kind != "base" or targets[hits[0].target].level != "street":
                    covered[s:e] = b"\x01" * (e - s)
            typos = self._typos(t, covered, bigrams)
            if typos:
                spans = [(s, e) for s, e, *_ in typos]
                mentions = [m for m in mentions if not any(s < m[1] and m[0] < e for s, e in spans)] + typos
        if not mentions:
            return PlaceResult()

        county_score: dict[str, float] = defaultdict(float)
        street_score: dict[str, float] = defaultdict(float)
        named_county: set[str] = set()
        named_street_county: set[str] = set()
        cities: set[str] = set()
        outside = 0.0
        seen: dict[tuple[str, int], int] = defaultdict(int)
        evidence: list[str] = []
        for _s, _e, form, hits, mult in mentions:
            n_in = sum(1 for h in hits if targets[h.target].inside)
            n_out = len(hits) - n_in
            for h in hits:
                tg = targets[h.target]
                key = (form, h.target)
                rep = seen[key]
                seen[key] += 1
                if rep > MAX_REPEATS:
                    continue
                # A name shared by divisions inside and outside the region is read as the
                # region's (it is the region's hotline); the others keep a small share.
                if not n_in or not n_out:
                    share = 1.0 / len(hits)
                elif tg.inside:
                    share = 1.0 / n_in
                else:
                    share = OUTSIDE_SHARED / n_out
                w = h.weight * mult * share * (1.0 if rep == 0 else REPEAT)
                if rep == 0:
                    where = "" if tg.inside or tg.ancestor else " (outside region)"
                    evidence.append(f"{form}→{tg.name} {tg.code} {h.kind} +{w:.2f}{where}")
                if tg.ancestor:
                    continue
                if not tg.inside:
                    outside += w
                elif tg.level in ("province", "city"):
                    cities.add(tg.code)
                elif tg.level == "county":
                    county_score[tg.code] += w
                    named_county.add(tg.code)
                else:
                    county_score[tg.county] += w
                    street_score[tg.code] += w
                    named_street_county.add(tg.county)
        for c in list(county_score):
            if c in named_county and c in named_street_county:
                county_score[c] += BONUS_COUNTY_AND_STREET
            i = self._index_of.get(c)
            if i is not None and targets[i].city in cities:
                county_score[c] += BONUS_CITY
        if not county_score:
            return PlaceResult(evidence=evidence)
        ranked = sorted(county_score.items(), key=lambda kv: (-kv[1], kv[0]))
        code, s1 = ranked[0]
        total = sum(county_score.values()) + outside
        confidence = (s1 / total) * (1.0 - math.exp(-s1 / CONF_SCALE)) if s1 > 0 else 0.0
        streets = [(s, w) for s, w in street_score.items() if targets[self._index_of[s]].county == code]
        street = max(streets, key=lambda kv: (kv[1], kv[0]))[0] if streets else None
        county = self._divisions.get(code)
        return PlaceResult(
            county_code=code,
            county_name=county.name if county else None,
            street_code=street,
            street_name=self._divisions[street].name if street else None,
            confidence=round(min(1.0, max(0.0, confidence)), 4),
            evidence=evidence,
            alternatives=[(c, round(s / total, 4)) for c, s in ranked[1:6]],
        )


def _alias(v: str) -> list[str]:
    out = []
    for a, b in _CHAR_ALIASES.items():
        if a in v:
            out.append(v.replace(a, b))
    return out


def base_name(d: Division, divisions: Mapping[str, Division] | None = None) -> str | None:
    """The name without its suffix (岳麓区 → 岳麓, 望月湖街道 → 望月湖, 长沙市 → 长沙, 城步苗族自治县 →
    城步), or None when nothing of 2+ characters is left (攸县). ``divisions`` lets a zone drop its
    city prefix (岳阳市屈原管理区 → 屈原)."""
    if d.level == "street":
        return _strip(d.name, _STREET_SUFFIXES)
    if d.level == "county":
        bases = _county_bases(d.name, divisions or {}, d)
        return bases[0] if bases else None
    return _area_base(d.name)


def _area_base(name: str) -> str | None:
    m = _ETHNIC.match(name)
    return m.group(1) if m else _strip(name, _AREA_SUFFIXES)


def _county_bases(name: str, divs: Mapping[str, Division], d: Division) -> list[str]:
    """Short forms of a county name: 岳麓区 -> 岳麓; 城步苗族自治县 -> 城步; 岳阳市屈原管理区 -> 屈原."""
    m = _ETHNIC.match(name)
    if m:
        return [m.group(1)]
    for z in _ZONE_SUFFIXES:
        if name.endswith(z):
            rest = name[: -len(z)]
            prefixes = []
            city = divs.get(d.parent_code)
            if city:
                prefixes += [city.name, _strip(city.name, _AREA_SUFFIXES) or city.name]
                prov = divs.get(city.parent_code)
                if prov:
                    prefixes += [prov.name, _strip(prov.name, _AREA_SUFFIXES) or prov.name]
            changed = True
            while changed:
                changed = False
                for p in prefixes:
                    if p and rest.startswith(p):
                        rest, changed = rest[len(p) :], True
            return [rest] if len(rest) >= 2 else []
    b = _strip(name, _COUNTY_SUFFIXES)
    return [b] if b else []


def _inside_word(t: str, i: int, j: int, box: frozenset[str]) -> bool:
    """Is t[i:j] part of a longer dictionary word (one of ``box``) in the text?"""
    k = j - i
    for size in range(k + 1, k + 4):
        for start in range(max(0, j - size), i + 1):
            if t[start : start + size] in box:
                return True
    return False
