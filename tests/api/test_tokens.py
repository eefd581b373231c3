"""API tokens: issued by a service, printed by a thin command, never logged."""

from __future__ import annotations

import logging

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token

from messaging import services

pytestmark = pytest.mark.django_db


def test_issuing_creates_the_token_once_and_then_returns_the_same(alice):
    first = services.issue_api_token(alice)

    assert services.issue_api_token(alice) == first
    assert Token.objects.get(user=alice).key == first
    assert len(first) == 40


def test_rotating_replaces_the_token(alice):
    old = services.issue_api_token(alice)

    new = services.issue_api_token(alice, rotate=True)

    assert new != old
    assert list(Token.objects.filter(user=alice).values_list("key", flat=True)) == [new]


def test_no_token_for_an_inactive_user(make_user):
    dormant = make_user(is_active=False)

    with pytest.raises(ValidationError):
        services.issue_api_token(dormant)
    assert not Token.objects.filter(user=dormant).exists()


def test_the_command_prints_the_token_to_stdout_only_and_logs_without_it(alice, capsys, caplog):
    caplog.set_level(logging.DEBUG)

    call_command("issue_api_token", "alice")

    out, err = capsys.readouterr()
    key = Token.objects.get(user=alice).key
    assert out.strip() == key
    assert key not in err
    assert "api_token.issued" in caplog.text
    assert key not in caplog.text


def test_the_command_rotates_on_request(alice, capsys):
    old = services.issue_api_token(alice)

    call_command("issue_api_token", "alice", "--rotate")

    assert capsys.readouterr().out.strip() == Token.objects.get(user=alice).key != old


@pytest.mark.parametrize("username", ["nobody", "dormant"])
def test_the_command_refuses_unknown_and_inactive_users(make_user, username):
    make_user("dormant", is_active=False)

    with pytest.raises(CommandError, match="no active user named"):
        call_command("issue_api_token", username)
