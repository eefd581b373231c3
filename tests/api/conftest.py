"""API fixtures: clients authenticated the way services are (a token) and browsers are (a session)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from messaging import services


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


@pytest.fixture
def client_for(db):
    """`client_for(user)`: an API client sending `user`'s token, issued through the service."""

    def make(user) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {services.issue_api_token(user)}")
        return client

    return make


@pytest.fixture
def as_alice(client_for, alice) -> APIClient:
    return client_for(alice)


@pytest.fixture
def as_bob(client_for, bob) -> APIClient:
    return client_for(bob)


@pytest.fixture
def carol(make_user):
    return make_user("carol")


@pytest.fixture
def as_carol(client_for, carol) -> APIClient:
    return client_for(carol)
