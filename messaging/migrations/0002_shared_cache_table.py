"""The table of Django's database cache (settings.CACHES["default"]), so `migrate` is all it takes.

Every web process shares it: the API's per-user rate limits count there. The DDL is what
`manage.py createcachetable` writes for PostgreSQL; IF NOT EXISTS lets a database where that
command already ran migrate too.
"""

from django.db import migrations

CACHE_TABLE = "shared_cache"


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0001_initial"),
    ]

    operations = [
        migrations.RunSQL(
            sql=[
                f'CREATE TABLE IF NOT EXISTS "{CACHE_TABLE}" ('
                '"cache_key" varchar(255) NOT NULL PRIMARY KEY, '
                '"value" text NOT NULL, '
                '"expires" timestamp with time zone NOT NULL)',
                f'CREATE INDEX IF NOT EXISTS "{CACHE_TABLE}_expires" ON "{CACHE_TABLE}" ("expires")',
            ],
            reverse_sql=[f'DROP TABLE IF EXISTS "{CACHE_TABLE}"'],
        ),
    ]
