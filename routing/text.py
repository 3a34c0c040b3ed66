"""Chinese text pipeline for routing: normalisation, redaction of personal data, and tokens.

``normalize`` folds a message to one canonical form (NFKC, so full-width letters,
digits and punctuation become half-width; lower-case ASCII; one space for any run
of whitespace) and blanks out personal data that must never become a feature:
mobile and landline numbers, 18- and 15-digit 身份证 numbers, e-mail addresses,
QQ numbers, any other run of 7+ digits (bank cards, order numbers), and names
where they can be recognised (a common surname before 先生/女士/小姐, and the
name after 我叫 / 本人叫 / 姓名 / 联系人).

``tokens`` cuts the normalised text with one shared jieba tokenizer and keeps
the content words: stop words, punctuation, numbers, single Latin letters and
the masked place codes of the training data (A3区 -> a3) are dropped.

The tokenizer is created lazily, once per process, under a lock. Its user
dictionary is the built-in ``HOTLINE_TERMS`` plus any words given to
``configure`` (the gazetteer: counties and streets, unit names, policy terms).
It cuts with ``HMM=False``: on the labelled messages the HMM's guesses at
unknown words did not improve classification (docs/routing.md) and cost time.
"""

from __future__ import annotations

import csv
import logging
import math
import re
import threading
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import jieba

__all__ = [
    "HOTLINE_TERMS",
    "STOP_WORDS",
    "configure",
    "content_tokens",
    "cut",
    "gazetteer_words",
    "normalize",
    "tokenizer",
    "tokens",
]

# Words jieba's default dictionary splits (or joins wrongly) that matter on a hotline.
HOTLINE_TERMS: tuple[str, ...] = tuple(
    """
    12345 12345热线 市长热线 政务服务 便民服务 办不成事 首接负责 接诉即办 一网通办 最多跑一次
    物业费 物业公司 业主委员会 业委会 居委会 村委会 网格员 小区 公摊面积 停车费 停车位 充电桩
    违章建筑 违建 私搭乱建 占道经营 占道施工 渣土车 噪音扰民 施工噪音 夜间施工 广场舞 油烟扰民
    餐饮油烟 垃圾分类 垃圾清运 黑臭水体 污水直排 偷排 扬尘 烧烤油烟 养殖污染 环评
    公交车 公交线路 公交站 公交站台 地铁站 网约车 出租车 拒载 共享单车 电动车 电动自行车 红绿灯
    斑马线 交通拥堵 限行 驾驶证 行驶证 年检 违章停车 高速公路 收费站 ETC 客运站 班车 过境车辆
    校外培训 培训机构 违规补课 有偿补课 学区 学位 入学 招生 择校 幼儿园 义务教育 教育局 课后服务
    社保 社保卡 医保 医保卡 养老保险 医疗保险 失业保险 工伤保险 生育保险 公积金 住房公积金
    拖欠工资 欠薪 农民工 劳动合同 劳动仲裁 退休金 养老金 事业编制 人社局 人才引进 灵活就业
    新冠 核酸检测 疫苗接种 医患纠纷 计划生育 二孩 独生子女 卫健委 乡镇卫生院 村卫生室 疾控中心
    预付卡 办卡 退费 消费者权益 市场监管 食品安全 假冒伪劣 传销 非法集资 景区 旅行社 导游
    不动产证 房产证 产权证 商品房 烂尾楼 交房 延期交房 棚户区改造 棚改 拆迁安置 征地拆迁 公租房
    廉租房 安置房 保障房 老旧小区改造 加装电梯 二次供水 自来水 停水 停电 燃气 天然气 路灯
    """.split()
)

# Function words (and a few words used as them) that the segmented training rows
# had removed. Derived by cutting the full-text messages and listing the words
# that never survive into their segmented copies; dropping the same words at
# serve time keeps the word features of both kinds of training row and of live
# messages alike. Punctuation, numbers and single Latin letters are dropped by
# rule in ``content_tokens``.
STOP_WORDS: frozenset[str] = frozenset(
    """
    的 是 了 在 不 有 都 我 也 没有 和 我们 就 到 还 为 给 要 对 这 能 但 上 又 等 可以 与 吗 被 让 去 不能 向 而 来 并 从 一 就是 他们 这样 将 多 什么
    把 有关 没 以 作为 为什么 会 这个 个 及 但是 如果 不是 自己 这些 还是 可 该 由 关于 多次 很 大 才 于 过 因为 按 为了 还有 本人 因 着 其 通过 开始 人民 任何
    更 呢 只有 怎么 而且 此 用 时候 你 们 其他 您 或 他 二 根据 这么 你们 很多 地 由于 谁 内 难道 那 之 所以 同时 所 结果 得 三 至 按照 且 打 不要 拿 为何 叫
    看 或者 必须 可是 吧 非常 出 并且 基本 甚至 那么 啊 如此 只是 一样 望 如何 经过 均 才能 可能 连 经 个人 尽快 如 这里 跟 以及 比 对于 多少 其中 各种 到底 因此
    不会 如下 近 大家 自 不管 像 本 当 只要 各 不得 出来 哪里 经常 起 老 虽然 四 有些 据 何时 后来 带 仍 然后 竟然 的话 管 然而 第 另外 那些 等等 不了 怎么办
    起来 她 极大 即 既 另 仍然 既然 保险 其它 其实 仅 五 而是 更加 快 如今 它 每 不仅 别人 一般 靠 那里 同 各位 哪 便 马上 不少 不但 见 到处 之一 不再 否则 随着
    那个 不同 共 哪个 呀 首先 则 于是 哪些 离 一切 某些 就算 比如 怎样 某 六 凭 除了 几乎 较 及其 怕 居然 者 故意 加上 反而 别的 从来 从未 若 么 不得不 除 任 往
    刚 亲自 不过 方 人家 当然 故 究竟 归 依照 进去 仅仅 自身 一旦 他人 公然 不满 大概 基本上 据说 虽 满 极 即将 即使 定 等到 己 不如 这边 无论 极其 自从 别 单
    近年来 大多 从而 按时 简直 将近 敢 毫无 出去 本身 尽 理应 进来 本着 来看 竟 毕竟 借 综上所述 不起 要是 充分 各个 不然 社会主义 边 差不多 其余 冒 她们 冲 大事 啦
    前后 绝对 其次 那样 零 例如 大约 极为 加之 待 很少 至于 八 当中 怎么样 鉴于 要么 替 以免 看来 迫于 而言 那边 七 随 光 极度 况且 再说 从不 初 从此 据我所知 活
    而已 可见 不止 尽管 半 基于 九 照 大大 从中 或是 并非 更为 的确 尽量 不怕 一方面 这时 上下 互相 不论 依 使得 几 即便 当场 与其 多多 立马 赶 之类 各自 以便
    什么样 千万 乃至 岂 别说 吓 万一 纯粹 不力 长期以来 也好 倍感 不仅仅 此外 大都 日益 接着 上去 以致 据悉 加以 何 自家 不问 之所以 从严 上来 那时 白 总之 嘛 哪怕
    以至于 绝不 咱们 人人 处处 此后 刚好 哦 恐怕 由此可见 何况 何处 就此 全力 何必 臭 近几年来 决不 不能不 哪儿 它们 非得 除非 尽早 过于 临 进而 其二 常 另一方面 另行
    不成 接下来 难怪 暗中 千 尽可能 当下 不已 不胜 保管 常常 咋 如期 啥 必将 纯 大张旗鼓 全都 要不然 不下 从小 与否 极端 借此 毫不 而后 当即 赶快 其一 不必 如若 莫
    谁知 快要 朝 不料 怪 一来 不至于 白白 单纯 假如 顿时 极力 届时 截至 将要 怎 全身心 与此同时 动不动 不得已 一则 不时 高低 每逢 老是 要不是 罢了 每当 两者 颇 伙同
    或许 全年 就是说 单单 某个 腾 虽说 趁 乃 屡屡 挨着 反过来 似的 顺 立 难得 仍旧 年复一年 来讲 喂 到头来 但愿 牢牢 当着 也罢 屡次 恰恰 传 每每 连连 立刻 宁愿 不比
    鄙人 不怎么 传说 其后
    """.split()
)

_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁"
    "任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴"
    "莫孔向汤粟易文颜欧阳伍聂章左柳甘晏佘符喻涂胥"
)
_S = f"[{_SURNAMES}]"
_CJK = "[\u4e00-\u9fff]"

# Numbers first, in one pass (the scan is the costly part): 身份证 (18 digits or the
# old 15), mobile numbers (optionally +86, optionally split by - or space), landlines
# with an area code, and any other run of 7+ digits (cards, accounts, order numbers).
_NUMBERS = re.compile(
    r"(?<![\d])(?:\d{17}[\dx]|\d{15}|(?:\+?86[- ]?)?1[3-9]\d[- ]?\d{4}[- ]?\d{4}|0\d{2,3}[- ]?\d{3,4}[- ]?\d{4})(?!\d)"
    r"|\d{7,}"
)
# Every number above contains 3 digits, an optional - or space, and 4 more digits: a
# cheap scan that lets the slower full pattern run only on the messages that have one.
_MAY_HAVE_NUMBER = re.compile(r"\d{3}[- ]?\d{4}")
# Then the patterns that need a cue word. Each match is replaced by the template
# (names keep their cue: 我叫张三 -> 我叫, 王先生 -> 先生).
_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.ASCII), " "),  # e-mail
    (re.compile(r"(?:qq|扣扣|企鹅)(?:号码|号)?\s*[:：]?\s*\d{5,11}"), " "),  # QQ number
    (_NUMBERS, " "),
    (
        re.compile(r"(电话|手机|座机|联系方式|tel)\s*[:：]?\s*\d{7,8}(?!\d)"),
        r"\1 ",
    ),  # local number after a cue
    (re.compile(f"{_S}{_CJK}?(?=先生|女士|小姐)"), " "),  # 张先生, 王某女士
    (
        re.compile(f"(我叫|名叫|姓名|本人叫|联系人|我的名字叫)\\s*[:：]?\\s*{_S}{_CJK}{{1,2}}"),
        r"\1 ",
    ),  # 我叫张三
)

_WS = re.compile(r"\s+")
_INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
_MASKED_PLACE = re.compile(r"[a-m]\d{1,2}")  # the data set's masked place codes: a3 (区), k6 (县)
_NUMBER = re.compile(r"[\d.,%]+")


def normalize(text: str) -> str:
    """NFKC + width folding + lower-case ASCII + collapsed whitespace, with personal data blanked."""
    if not text:
        return ""
    # NFKC folds full-width forms (ＡＢＣ１２３，) to ASCII and compatibility characters to their plain form.
    text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", str(text))).lower()
    for pattern, template in _REDACTIONS:
        if pattern is _NUMBERS and not _MAY_HAVE_NUMBER.search(text):
            continue
        text = pattern.sub(template, text)
    return _WS.sub(" ", text).strip()


# ---- the shared tokenizer -------------------------------------------------------------

_lock = threading.Lock()
_tokenizer: jieba.Tokenizer | None = None
_user_words: tuple[str, ...] = ()


def _build(words: Iterable[str]) -> jieba.Tokenizer:
    logging.getLogger("jieba").setLevel(logging.WARNING)  # its start-up chatter goes to stderr
    tk = jieba.Tokenizer()
    tk.initialize()
    for word in (*HOTLINE_TERMS, *words):
        word = normalize(word)
        # A word with a space or a single character would only confuse the cutter.
        if len(word) >= 2 and " " not in word:
            tk.add_word(word)
    return tk


def configure(words: Iterable[str] = ()) -> None:
    """Set the user dictionary (beside ``HOTLINE_TERMS``) and (re)build the tokenizer now.

    Call once at start-up with the gazetteer. The new tokenizer is built
    completely before it replaces the old one, so concurrent ``cut`` calls see
    either the old or the new one, never a half-built dictionary.
    """
    global _tokenizer, _user_words
    words = tuple(dict.fromkeys(w for w in words if w))
    with _lock:
        built = _build(words)
        _tokenizer, _user_words = built, words


def tokenizer() -> jieba.Tokenizer:
    """The process-wide tokenizer, initialised on first use (about a second)."""
    tk = _tokenizer
    if tk is None:
        with _lock:
            if _tokenizer is None:
                _set(_build(_user_words))
            tk = _tokenizer
    return tk


def _set(tk: jieba.Tokenizer) -> None:
    global _tokenizer
    _tokenizer = tk


def cut(text: str, *, normalized: bool = False) -> list[str]:
    """All jieba tokens of the (normalised) text, punctuation and spaces included.

    The same result as ``jieba.Tokenizer.lcut(text, HMM=False)`` (a test checks
    it), computed faster (see ``_cut_dag_no_hmm``), which matters for the
    classifier's per-message latency.
    """
    if not normalized:
        text = normalize(text)
    if not text:
        return []
    tk = tokenizer()
    logtotal = math.log(tk.total)
    out: list[str] = []
    for blk in _RE_HAN.split(text):
        if not blk:
            continue
        if _RE_HAN.match(blk):
            _cut_dag_no_hmm(blk, tk.FREQ, logtotal, out)
        else:
            for piece in _RE_SKIP.split(blk):
                if not piece:
                    continue
                if _RE_SKIP.match(piece):
                    out.append(piece)
                else:
                    out.extend(piece)
    return out


# jieba's own block patterns (jieba/__init__.py: re_han_default, re_skip_default, re_eng).
_RE_HAN = re.compile("([\u4e00-\u9fd5a-zA-Z0-9+#&\\._%\\-]+)", re.U)
_RE_SKIP = re.compile("(\r\n|\\s)", re.U)
_RE_ENG = re.compile("[a-zA-Z0-9]", re.U)

def _cut_dag_no_hmm(sentence: str, freq: dict[str, int], logtotal: float, out: list[str]) -> None:
    """jieba's ``__cut_DAG_NO_HMM`` (get_DAG + calc + the Latin-letter buffer), same result.

    Faster because each candidate word's weight, log(freq) - log(total), is
    computed once while the DAG is built (jieba looks the word up again in
    ``calc``), and everything is a local lookup. The arithmetic is jieba's, in
    its order, so ties resolve the same way (to the longer word).
    """
    n = len(sentence)
    get = freq.get
    log = math.log
    single = -logtotal  # jieba: log(FREQ.get(w) or 1) - logtotal for a character it does not know
    dag: list[list[tuple[int, float]]] = []
    for k in range(n):
        ends = []
        i = k
        f = get(sentence[k])
        while f is not None:
            if f:
                ends.append((i, log(f) - logtotal))
            i += 1
            if i >= n:
                break
            f = get(sentence[k : i + 1])
        dag.append(ends or [(k, single)])
    route_v = [0.0] * (n + 1)
    route_x = [0] * (n + 1)
    for idx in range(n - 1, -1, -1):
        best_v = best_x = None
        for x, w in dag[idx]:
            v = w + route_v[x + 1]
            # jieba takes max((v, x)): a tie goes to the larger end index
            if best_v is None or v > best_v or (v == best_v and x > best_x):
                best_v, best_x = v, x
        route_v[idx] = best_v
        route_x[idx] = best_x
    x = 0
    buf = ""
    while x < n:
        y = route_x[x] + 1
        word = sentence[x:y]
        if len(word) == 1 and _RE_ENG.match(word):
            buf += word
        else:
            if buf:
                out.append(buf)
                buf = ""
            out.append(word)
        x = y
    if buf:
        out.append(buf)


@lru_cache(maxsize=1 << 16)
def _is_content(word: str) -> bool:
    if not word or word in STOP_WORDS or _NUMBER.fullmatch(word):
        return False
    if not any(ch.isalnum() for ch in word):  # punctuation, symbols, emoji
        return False
    if word.isascii() and (len(word) == 1 or _MASKED_PLACE.fullmatch(word)):
        return False
    return True


def content_tokens(words: Iterable[str]) -> list[str]:
    """Keep the content words of an already cut text (also used for pre-segmented training rows)."""
    return [w for w in words if _is_content(w)]


def tokens(text: str, *, max_chars: int | None = None) -> list[str]:
    """Content words of ``text``: normalised, cut by jieba, stop words and noise removed.

    ``max_chars`` caps the normalised text before cutting (the classifier reads
    the title and the first part of the message only).
    """
    norm = normalize(text)
    if max_chars is not None:
        norm = norm[:max_chars]
    return content_tokens(cut(norm, normalized=True))


# ---- gazetteer -------------------------------------------------------------------------

_SUFFIXES = ("街道办事处", "街道", "自治县", "自治州", "镇", "乡", "区", "县", "市")


def gazetteer_words(divisions_dir: Path, region: str = "43") -> list[str]:
    """County and street names (with and without 区/县/街道/镇 suffix) under a division code.

    ``divisions_dir`` holds ``areas.csv`` and ``streets.csv`` (the divisions data
    set); ``region`` is a 2-, 4- or 6-digit code prefix. Returns [] when the files
    are absent.
    """
    words: dict[str, None] = {}
    for name, code_col in (("cities.csv", "code"), ("areas.csv", "code"), ("streets.csv", "code")):
        path = Path(divisions_dir) / name
        if not path.is_file():
            continue
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                if not row.get(code_col, "").startswith(region):
                    continue
                full = row["name"].strip()
                if not full or full in ("市辖区", "县"):
                    continue
                words[full] = None
                for suffix in _SUFFIXES:
                    if full.endswith(suffix) and len(full) - len(suffix) >= 2:
                        words[full[: -len(suffix)]] = None
                        break
    return list(words)
