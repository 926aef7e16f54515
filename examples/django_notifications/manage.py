#!/usr/bin/env python3
"""Django's command line for the example: ``python examples/django_notifications/manage.py``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    # The example is the package django_notifications: its parent folder goes on the path.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_notifications.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
