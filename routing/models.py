"""Routing's tables: the dispatch catalogue, decisions, corrections and model versions."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

RESTRICT = fields.RESTRICT


class CatalogueRule(Model):
    """One row of the 派单目录, edited by the centre's admins."""

    id = fields.IntField(primary_key=True)
    position = fields.IntField(db_index=True)
    enabled = fields.BooleanField(default=True)
    category = fields.CharField(max_length=200, default="")
    request_type = fields.CharField(max_length=16, default="")
    division_code = fields.CharField(max_length=12, default="")
    keywords = fields.CharField(max_length=500, default="")  # separated by 、 or ,
    lead = fields.CharField(max_length=24)
    co_unit_ids = fields.JSONField(default=list)
    note = fields.CharField(max_length=200, default="")
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "routing_rule"


class RoutingDecision(Model):
    """What routing proposed for a case, kept so corrections can be compared with it."""

    id = fields.IntField(primary_key=True)
    case = fields.ForeignKeyField("hotline.Case", related_name="routing_decisions", on_delete=RESTRICT)
    model_version = fields.CharField(max_length=32)
    category = fields.CharField(max_length=64, default="")
    confidence = fields.FloatField()
    district_code = fields.CharField(max_length=12, default="")
    street_code = fields.CharField(max_length=12, default="")
    place_confidence = fields.FloatField(default=0)
    lead_unit = fields.ForeignKeyField(
        "hotline.Unit", related_name="routing_decisions", null=True, on_delete=RESTRICT
    )
    co_unit_ids = fields.JSONField(default=list)
    rule = fields.ForeignKeyField(
        "hotline.CatalogueRule", related_name="decisions", null=True, on_delete=fields.SET_NULL
    )
    alternatives = fields.JSONField(default=list)
    auto_dispatched = fields.BooleanField(default=False)
    reason = fields.CharField(max_length=300, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "routing_decision"


class RoutingExample(Model):
    """A labelled example from the city's own work: a dispatcher's change or an approved return."""

    id = fields.IntField(primary_key=True)
    case = fields.ForeignKeyField("hotline.Case", related_name="routing_examples", on_delete=RESTRICT)
    source = fields.CharField(max_length=24)  # dispatcher_change / approved_return
    category = fields.CharField(max_length=64, default="")
    lead_unit = fields.ForeignKeyField(
        "hotline.Unit", related_name="routing_examples", null=True, on_delete=RESTRICT
    )
    predicted_category = fields.CharField(max_length=64, default="")
    predicted_unit_id = fields.IntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "routing_example"
        unique_together = (("case_id", "source", "lead_unit_id", "category"),)


class ModelVersion(Model):
    """A trained classifier, of which exactly one is live at a time."""

    id = fields.IntField(primary_key=True)
    version = fields.CharField(max_length=32, unique=True)
    blob = fields.BinaryField()
    metrics = fields.JSONField(default=dict)
    is_live = fields.BooleanField(default=False, db_index=True)
    note = fields.CharField(max_length=200, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "routing_model_version"
