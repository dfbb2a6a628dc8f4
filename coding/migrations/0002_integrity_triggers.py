"""The cross-table integrity triggers (coding/triggers.py) are not installed by a migration.

They are removed before and installed after every `migrate` run (coding/apps.py): SQLite
rebuilds a table to alter it, and a trigger installed here would break, or be silently
dropped by, any later migration that alters one of the tables it names. This migration
stays (empty) because later migrations depend on it.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("coding", "0001_initial")]

    operations = []
