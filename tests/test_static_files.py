"""Static files (the admin's, the API docs') are served by the web process itself with DEBUG off."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client


@pytest.fixture
def collected(settings, tmp_path):
    """What the Dockerfile's `collectstatic` writes, in a directory of this test's own."""
    settings.STATIC_ROOT = tmp_path / "static"
    call_command("collectstatic", interactive=False, verbosity=0)
    return settings.STATIC_ROOT


@pytest.mark.parametrize(
    "path",
    [
        "admin/css/base.css",
        "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
    ],
)
def test_collected_static_files_are_served_with_debug_off(collected, path):
    assert settings.DEBUG is False

    response = Client().get(f"/static/{path}", HTTP_ACCEPT_ENCODING="gzip")

    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    assert b"".join(response.streaming_content) == (collected / f"{path}.gz").read_bytes()


def test_an_unknown_static_file_is_a_404(collected):
    assert Client().get("/static/admin/css/no-such-file.css").status_code == 404
