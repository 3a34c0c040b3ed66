"""Retraining on the city's own corrections, and the guard against a worse model.

The shipped model was trained on every labelled message of the platform, so
only the city's own corrections are new to it: the held-out slice that
judges old against new is a fixed share of those (by case), never seen by the
new model either. A model that scores worse there is not made live.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from tortoise.transactions import in_transaction

from cases.models import Case
from routing.classifier import Classifier, FeatureConfig
from routing.models import ModelVersion, RoutingExample
from routing.training import Example, TrainOptions, load_labelled, metrics, train

HELD_OUT_SHARE = 0.25
MIN_HELD_OUT = 8


@dataclass(frozen=True)
class Verdict:
    replace: bool
    live_macro_f1: float
    new_macro_f1: float
    held_out: int
    reason: str


def held_out(example: Example, share: float = HELD_OUT_SHARE) -> bool:
    """A stable choice by group, so re-posts of one matter fall on one side."""
    digest = hashlib.sha256(example.group.encode()).digest()
    return digest[0] / 256 < share


def macro_f1(clf: Classifier, examples: Sequence[Example]) -> float:
    y_true = [e.label for e in examples]
    y_pred = [clf.predict(e.text or " ".join(e.tokens or ())).label for e in examples]
    labels = sorted(set(y_true) | set(clf.classes))
    return float(metrics(y_true, y_pred, labels)["macro_f1"])


def judge(live: Classifier, new: Classifier, held: Sequence[Example]) -> Verdict:
    """Replace the live model only if the new one does at least as well on the held-out slice."""
    if len(held) < MIN_HELD_OUT:
        return Verdict(False, 0.0, 0.0, len(held), f"城市自有纠错样本不足（留出 {len(held)} 条，至少 {MIN_HELD_OUT} 条），不替换")
    old, fresh = macro_f1(live, held), macro_f1(new, held)
    if fresh < old:
        return Verdict(False, old, fresh, len(held), f"新模型留出集 macro-F1 {fresh:.4f} 低于现用模型 {old:.4f}，不替换")
    return Verdict(True, old, fresh, len(held), f"新模型留出集 macro-F1 {fresh:.4f} ≥ 现用模型 {old:.4f}，已上线")


async def city_examples() -> list[Example]:
    """The city's corrections with the case text, one example per case (the latest label wins)."""
    rows = await RoutingExample.exclude(category="").order_by("id").values_list("case_id", "category")
    latest = dict(rows)
    texts = dict(await Case.filter(id__in=list(latest)).values_list("id", "content"))
    titles = dict(await Case.filter(id__in=list(latest)).values_list("id", "title"))
    return [
        Example(f"case{cid}", label, f"case{cid}", text=f"{titles.get(cid, '')} {texts[cid]}".strip())
        for cid, label in latest.items()
        if cid in texts
    ]


def model_bytes(clf: Classifier) -> tuple[bytes, str]:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "model.npz"
        version = clf.save(path)
        return path.read_bytes(), version


async def make_live(clf: Classifier, metrics_: dict, note: str = "") -> str:
    """Store a model and make it the only live one, atomically."""
    blob, version = model_bytes(clf)
    async with in_transaction() as conn:
        await ModelVersion.filter(is_live=True).using_db(conn).update(is_live=False)
        existing = await ModelVersion.get_or_none(version=version).using_db(conn)
        if existing:
            await ModelVersion.filter(id=existing.id).using_db(conn).update(is_live=True)
        else:
            await ModelVersion.create(
                version=version, blob=blob, metrics=metrics_, is_live=True, note=note[:200], using_db=conn
            )
    return version


async def retrain(
    data_dir: Path, live: Classifier, *, folds: int = 3, log: Callable[[str], None] = print
) -> Verdict:
    """Train on the platform's data plus the city's corrections; make it live only if not worse."""
    city = await city_examples()
    held = [e for e in city if held_out(e)]
    if len(held) < MIN_HELD_OUT:
        return judge(live, live, held)
    training = [*load_labelled(Path(data_dir)), *[e for e in city if not held_out(e)]]
    log(f"训练样本 {len(training)} 条（其中城市纠错 {len(city) - len(held)} 条），留出 {len(held)} 条")
    new, cv, _ = train(training, FeatureConfig(), TrainOptions(folds=folds), log=log)
    verdict = judge(live, new, held)
    if verdict.replace:
        await make_live(new, {"held_out_macro_f1": verdict.new_macro_f1, "cv": cv.get("full_text", {}).get("macro_f1")},
                        note=verdict.reason)
    return verdict
