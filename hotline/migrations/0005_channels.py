from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('hotline', '0004_timers')]

    initial = False

    operations = [
        ops.CreateModel(
            name='CallLog',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('call_sid', fields.CharField(unique=True, max_length=64)),
                ('direction', fields.CharField(max_length=8)),
                ('purpose', fields.CharField(default='intake', max_length=16)),
                ('from_number', fields.CharField(default='', max_length=32)),
                ('to_number', fields.CharField(default='', max_length=32)),
                ('status', fields.CharField(default='ringing', max_length=16)),
                ('case', fields.ForeignKeyField('hotline.Case', source_field='case_id', null=True, db_constraint=True, to_field='id', related_name='calls', on_delete=OnDelete.RESTRICT)),
                ('agent', fields.ForeignKeyField('hotline.User', source_field='agent_id', null=True, db_constraint=True, to_field='id', related_name='calls', on_delete=OnDelete.RESTRICT)),
                ('speech_text', fields.TextField(default='', unique=False)),
                ('recording_sid', fields.CharField(null=True, unique=True, max_length=64)),
                ('recording_url', fields.CharField(default='', max_length=500)),
                ('transcript', fields.TextField(default='', unique=False)),
                ('retain_until', fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False)),
                ('recording_deleted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('started_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
                ('ended_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'call_log', 'app': 'hotline', 'pk_attr': 'id', 'table_description': 'One telephone call, inbound or outbound, and what became of it.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CallEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('call', fields.ForeignKeyField('hotline.CallLog', source_field='call_id', db_constraint=True, to_field='id', related_name='events', on_delete=OnDelete.RESTRICT)),
                ('event', fields.CharField(max_length=32)),
                ('payload', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'call_event', 'app': 'hotline', 'indexes': [Index(fields=['call_id', 'id'])], 'pk_attr': 'id', 'table_description': 'What happened during a call, in order: menu choices, queueing, bridging, hang-up.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PartnerHotline',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('code', fields.CharField(unique=True, max_length=32)),
                ('name', fields.CharField(max_length=100)),
                ('phone', fields.CharField(default='', max_length=32)),
                ('intake_url', fields.CharField(default='', max_length=300)),
                ('secret_env', fields.CharField(default='', max_length=64)),
                ('is_active', fields.BooleanField(default=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'partner_hotline', 'app': 'hotline', 'pk_attr': 'id', 'table_description': 'Another 12345 centre or a specialised line (12333, 12366) cases can be handed to.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Handoff',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('case', fields.ForeignKeyField('hotline.Case', source_field='case_id', db_constraint=True, to_field='id', related_name='handoffs', on_delete=OnDelete.RESTRICT)),
                ('partner', fields.ForeignKeyField('hotline.PartnerHotline', source_field='partner_id', db_constraint=True, to_field='id', related_name='handoffs', on_delete=OnDelete.RESTRICT)),
                ('direction', fields.CharField(max_length=8)),
                ('status', fields.CharField(default='pending', max_length=16)),
                ('partner_ref', fields.CharField(default='', max_length=64)),
                ('key', fields.CharField(unique=True, max_length=128)),
                ('attempts', fields.IntField(default=0)),
                ('next_attempt_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('error', fields.CharField(default='', max_length=300)),
                ('payload', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('confirmed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'handoff', 'app': 'hotline', 'indexes': [Index(fields=['status', 'next_attempt_at'])], 'pk_attr': 'id', 'table_description': 'A case handed to or received from a partner hotline (跨省诉求首接责任制).'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Case',
            name='details',
            field=fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddField(
            model_name='Case',
            name='handoff_due',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Case',
            name='handoff_started_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='User',
            name='accepts_calls',
            field=fields.BooleanField(default=False),
        ),
    ]
