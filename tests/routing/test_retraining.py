"""Retraining never makes a worse model live; a live model reaches running processes."""

from __future__ import annotations

import numpy as np
import pytest

from routing.classifier import Classifier
from routing.models import ModelVersion
from routing.retraining import MIN_HELD_OUT, judge, make_live, retrain
from routing.training import Example

# Synthetic complaints written for the tests (not platform messages).
HELD = [
    ("出租车司机拒载还故意绕路多收费", "交通运输"),
    ("网约车平台乱收费，司机不按导航走", "交通运输"),
    ("学校假期违规组织补课并收取补课费", "教育文体"),
    ("幼儿园收费太高，还乱收兴趣班费用", "教育文体"),
    ("公司拖欠工资三个月不发，社保也没有缴纳", "劳动和社会保障"),
    ("单位不给办理失业保险金申领手续", "劳动和社会保障"),
    ("医院乱收费，检查项目重复收费", "卫生计生"),
    ("工厂夜间偷排废气，刺鼻难闻，污染环境", "环境保护"),
    ("小区开发商延期交房，房产证迟迟办不下来", "城乡建设"),
    ("超市销售过期食品，商家拒不退换", "商贸旅游"),
]


def held_examples():
    return [Example(f"t{i}", label, f"g{i}", text=text) for i, (text, label) in enumerate(HELD)]


@pytest.fixture(scope="module")
def shipped():
    return Classifier.load()


def broken(model: Classifier) -> Classifier:
    """A model that answers the same class for everything: clearly worse."""
    intercept = np.full(len(model.classes), -1.0, dtype=np.float32)
    intercept[0] = 1.0
    return Classifier(
        classes=model.classes, coef=np.zeros_like(model.coef), intercept=intercept,
        idf=model.idf, temperature=1.0, cfg=model.cfg,
    )


def test_a_worse_model_is_refused(shipped):
    verdict = judge(shipped, broken(shipped), held_examples())
    assert not verdict.replace
    assert verdict.new_macro_f1 < verdict.live_macro_f1
    assert "不替换" in verdict.reason


def test_a_model_at_least_as_good_is_accepted(shipped):
    verdict = judge(broken(shipped), shipped, held_examples())
    assert verdict.replace and verdict.held_out == len(HELD)


def test_too_few_city_examples_never_replace_the_model(shipped):
    verdict = judge(broken(shipped), shipped, held_examples()[: MIN_HELD_OUT - 1])
    assert not verdict.replace and "不足" in verdict.reason


async def test_retrain_without_enough_corrections_refuses_before_training(app, shipped, tmp_path):
    verdict = await retrain(tmp_path, shipped, log=lambda *_: None)
    assert not verdict.replace


async def test_a_model_made_live_reaches_a_running_service_within_its_refresh(app, shipped):
    service = app.state.routing
    before = (await service.classifier()).version
    version = await make_live(broken(shipped), {"note": "test"})
    assert await ModelVersion.filter(is_live=True).count() == 1
    service._live.checked_at -= 3600  # as if the refresh interval had passed
    live = await service.classifier()
    assert live.version == version != before
    assert live.classifier.predict("出租车拒载").label == shipped.classes[0]
    # Put the shipped model back for the tests that follow.
    await ModelVersion.filter(is_live=True).update(is_live=False)
    service._live.checked_at -= 3600
    assert (await service.classifier()).version == "default"
