from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import post_migrate, pre_migrate


def _remove_triggers(sender, using: str = "default", plan=None, **kwargs) -> None:
    if plan:
        from coding import tally, triggers

        triggers.remove(connections[using])
        tally.remove(connections[using])


def _install_triggers(sender, using: str = "default", plan=None, **kwargs) -> None:
    from coding import tally, triggers

    triggers.install(connections[using])
    tally.install(connections[using])  # recounts the tally when its triggers were away


class CodingConfig(AppConfig):
    name = "coding"
    verbose_name = "Coding"

    def ready(self) -> None:
        # Signals at the schema boundary only (see coding/triggers.py for why).
        pre_migrate.connect(_remove_triggers, sender=self, dispatch_uid="coding_remove_triggers")
        post_migrate.connect(_install_triggers, sender=self, dispatch_uid="coding_install_triggers")
