from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('hotline', '0002_append_only_history')]

    initial = False

    operations = [
        ops.CreateModel(
            name='CatalogueRule',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('position', fields.IntField(db_index=True)),
                ('enabled', fields.BooleanField(default=True)),
                ('category', fields.CharField(default='', max_length=200)),
                ('request_type', fields.CharField(default='', max_length=16)),
                ('division_code', fields.CharField(default='', max_length=12)),
                ('keywords', fields.CharField(default='', max_length=500)),
                ('lead', fields.CharField(max_length=24)),
                ('co_unit_ids', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('note', fields.CharField(default='', max_length=200)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'routing_rule', 'app': 'hotline', 'pk_attr': 'id', 'table_description': "One row of the 派单目录, edited by the centre's admins."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ModelVersion',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('version', fields.CharField(unique=True, max_length=32)),
                ('blob', fields.BinaryField()),
                ('metrics', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('is_live', fields.BooleanField(default=False, db_index=True)),
                ('note', fields.CharField(default='', max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'routing_model_version', 'app': 'hotline', 'pk_attr': 'id', 'table_description': 'A trained classifier, of which exactly one is live at a time.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RoutingDecision',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('case', fields.ForeignKeyField('hotline.Case', source_field='case_id', db_constraint=True, to_field='id', related_name='routing_decisions', on_delete=OnDelete.RESTRICT)),
                ('model_version', fields.CharField(max_length=32)),
                ('category', fields.CharField(default='', max_length=64)),
                ('confidence', fields.FloatField()),
                ('district_code', fields.CharField(default='', max_length=12)),
                ('street_code', fields.CharField(default='', max_length=12)),
                ('place_confidence', fields.FloatField(default=0)),
                ('lead_unit', fields.ForeignKeyField('hotline.Unit', source_field='lead_unit_id', null=True, db_constraint=True, to_field='id', related_name='routing_decisions', on_delete=OnDelete.RESTRICT)),
                ('co_unit_ids', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('rule', fields.ForeignKeyField('hotline.CatalogueRule', source_field='rule_id', null=True, db_constraint=True, to_field='id', related_name='decisions', on_delete=OnDelete.SET_NULL)),
                ('alternatives', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('auto_dispatched', fields.BooleanField(default=False)),
                ('reason', fields.CharField(default='', max_length=300)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'routing_decision', 'app': 'hotline', 'pk_attr': 'id', 'table_description': 'What routing proposed for a case, kept so corrections can be compared with it.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RoutingExample',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('case', fields.ForeignKeyField('hotline.Case', source_field='case_id', db_constraint=True, to_field='id', related_name='routing_examples', on_delete=OnDelete.RESTRICT)),
                ('source', fields.CharField(max_length=24)),
                ('category', fields.CharField(default='', max_length=64)),
                ('lead_unit', fields.ForeignKeyField('hotline.Unit', source_field='lead_unit_id', null=True, db_constraint=True, to_field='id', related_name='routing_examples', on_delete=OnDelete.RESTRICT)),
                ('predicted_category', fields.CharField(default='', max_length=64)),
                ('predicted_unit_id', fields.IntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'routing_example', 'app': 'hotline', 'unique_together': (('case_id', 'source', 'lead_unit_id', 'category'),), 'pk_attr': 'id', 'table_description': "A labelled example from the city's own work: a dispatcher's change or an approved return."},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Case',
            name='keywords',
            field=fields.TextField(default='', unique=False),
        ),
        ops.AddField(
            model_name='Case',
            name='routing_confidence',
            field=fields.FloatField(null=True),
        ),
        ops.AddIndex(
            model_name='Case',
            index=Index(fields=['street_code', 'category_l1', 'created_at']),
        ),
        ops.AddIndex(
            model_name='Case',
            index=Index(fields=['district_code', 'category_l1', 'created_at']),
        ),
    ]
