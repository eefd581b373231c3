#!/usr/bin/env python
"""A Django service that is not the messaging service, using only its `outbox` and `relay` apps."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parcel_project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
