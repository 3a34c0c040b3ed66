import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

# AddField does not build the index a field's db_index asks for. The sweep
# claims by next_due_at every pass, so it must be an index scan; closed cases
# (null) stay out of it.
_INDEXES = (
    'CREATE INDEX IF NOT EXISTS "case_next_due_at_idx" ON "case" ("next_due_at") WHERE "next_due_at" IS NOT NULL',
    'CREATE INDEX IF NOT EXISTS "case_routing_state_idx" ON "case" ("routing_state")',
)


async def create_indexes(apps, schema_editor) -> None:
    for sql in _INDEXES:
        await schema_editor.client.execute_script(sql)


class Migration(migrations.Migration):
    dependencies = [('hotline', '0003_routing')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Notification',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('key', fields.CharField(unique=True, max_length=128)),
                ('case', fields.ForeignKeyField('hotline.Case', source_field='case_id', null=True, db_constraint=True, to_field='id', related_name='notifications', on_delete=OnDelete.RESTRICT)),
                ('recipient_kind', fields.CharField(max_length=16)),
                ('user', fields.ForeignKeyField('hotline.User', source_field='user_id', null=True, db_constraint=True, to_field='id', related_name='notifications', on_delete=OnDelete.RESTRICT)),
                ('channel', fields.CharField(max_length=8)),
                ('address', fields.CharField(default='', max_length=32)),
                ('template', fields.CharField(max_length=32)),
                ('body', fields.TextField(unique=False)),
                ('status', fields.CharField(default='pending', max_length=16)),
                ('attempts', fields.IntField(default=0)),
                ('next_attempt_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('provider_id', fields.CharField(null=True, unique=True, max_length=64)),
                ('error', fields.CharField(default='', max_length=300)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'notification', 'app': 'hotline', 'indexes': [Index(fields=['status', 'next_attempt_at'])], 'pk_attr': 'id', 'table_description': 'The outbox: one message to send, written in the transaction of the change it reports.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Case',
            name='extension_due',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Case',
            name='extension_requested_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Case',
            name='light',
            field=fields.CharField(default='', max_length=8),
        ),
        ops.AddField(
            model_name='Case',
            name='next_due_at',
            field=fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Case',
            name='reply_started_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Case',
            name='routing_state',
            field=fields.CharField(default='', db_index=True, max_length=8),
        ),
        ops.AddField(
            model_name='Case',
            name='timer_marks',
            field=fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddField(
            model_name='User',
            name='phone',
            field=fields.CharField(default='', max_length=32),
        ),
        ops.RunPython(create_indexes, reverse_code=ops.RunPython.noop),
    ]
