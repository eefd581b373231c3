"""Who may call the API: a token or a session; anonymous callers get 401, never data."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from messaging import services

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    ("get", "/api/messages/"),
    ("post", "/api/messages/"),
    ("get", f"/api/messages/{uuid.uuid4()}/"),
    ("post", f"/api/messages/{uuid.uuid4()}/read/"),
    ("get", "/api/notifications/"),
    ("post", f"/api/notifications/{uuid.uuid4()}/read/"),
    ("post", "/api/notifications/read-all/"),
    ("get", "/api/notifications/unread-count/"),
]


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_anonymous_requests_get_401_with_a_token_challenge(anonymous, method, url):
    response = getattr(anonymous, method)(url)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_an_unknown_token_is_401(method, url):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")

    assert getattr(client, method)(url).status_code == 401


def test_a_rotated_token_stops_working(alice):
    old = services.issue_api_token(alice)
    new = services.issue_api_token(alice, rotate=True)
    client = APIClient()

    client.credentials(HTTP_AUTHORIZATION=f"Token {old}")
    assert client.get("/api/messages/").status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Token {new}")
    assert client.get("/api/messages/").status_code == 200


def test_a_deactivated_users_token_is_refused(alice, as_alice):
    alice.is_active = False
    alice.save()

    assert as_alice.get("/api/messages/").status_code == 401


def test_a_browser_session_can_read_and_send_with_its_csrf_token(alice, bob):
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(alice)

    assert browser.get("/api/messages/").status_code == 200
    refused = browser.post("/api/messages/", {"receiver": "bob", "content": "no csrf"})
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]

    browser.get("/api/docs/")  # any page that renders the token sets the cookie
    token = browser.cookies["csrftoken"].value
    sent = browser.post("/api/messages/", {"receiver": "bob", "content": "with csrf"}, HTTP_X_CSRFTOKEN=token)
    assert sent.status_code == 201
