"""The broker permissions of each role, as code, as a command and as documented."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from messaging.topology import broker_permissions, build_topology, team_permissions

DOCS = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def names_matching(regex: str) -> list[str]:
    topology = build_topology("")
    names = [topology.events.name, topology.dead_letter_exchange.name, *(q.name for q in topology.all_queues())]
    return [name for name in names if re.match(regex, name)]


def test_only_the_relay_and_replay_may_write_to_the_events_exchange():
    writers = {
        role for role, granted in broker_permissions().items() if "messaging.events" in names_matching(granted.write)
    }

    assert writers == {"relay", "replay"}
    assert "messaging.events" not in names_matching(team_permissions("billing").write)


def test_only_the_consumer_may_read_its_queue():
    readers = {
        role
        for role, granted in broker_permissions().items()
        if "messaging.notifications" in names_matching(granted.read)
    }

    assert readers == {"consumer"}


def test_the_permissions_cover_a_namespace_only_when_asked():
    relay = broker_permissions()["relay"]
    namespaced = broker_permissions(r"test-[0-9a-f]{10}\.")["relay"]

    assert not re.match(relay.write, "test-0123456789.messaging.events")
    assert re.match(namespaced.write, "test-0123456789.messaging.events")
    assert not re.match(namespaced.write, "messaging.events")


def test_a_team_prefix_that_covers_our_names_is_refused():
    with pytest.raises(ValueError, match="covers"):
        team_permissions("messaging")
    with pytest.raises(CommandError, match="covers"):
        call_command("broker_permissions", "--team", "messaging", stdout=io.StringIO())


def test_the_documented_rabbitmqctl_lines_are_the_commands():
    printed = io.StringIO()
    call_command("broker_permissions", "--team", "billing", stdout=printed)
    documented = [line for line in DOCS.read_text().splitlines() if line.startswith("rabbitmqctl set_permissions")]

    assert documented == printed.getvalue().splitlines()
