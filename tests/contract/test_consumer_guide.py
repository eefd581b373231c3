"""Every code sample in docs/consumers.md runs: excerpts of the examples CI runs, commands, an event."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from django.core.management import call_command
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from messaging.models import Message
from outbox.asyncapi import message_key
from outbox.schemas import schema_of
from tests.helpers import relay_pending_events

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "consumers.md"
# An optional `<!-- sample: path -->` line, then a fenced block with its language.
BLOCK = re.compile(r"(?:<!-- sample: (?P<source>\S+) -->\n)?```(?P<language>\w+)\n(?P<code>.*?)```", re.DOTALL)


def samples(language: str) -> list[tuple[str | None, str]]:
    return [
        (match["source"], match["code"]) for match in BLOCK.finditer(GUIDE.read_text()) if match["language"] == language
    ]


def is_excerpt_of(code: str, text: str) -> bool:
    """Whether `code`'s lines stand in `text` in a row, all indented alike (as a method body is)."""
    wanted, lines = code.rstrip("\n").splitlines(), text.splitlines()
    for start, line in enumerate(lines):
        indent = line[: len(line) - len(line.lstrip())]
        window = lines[start : start + len(wanted)]
        if len(window) == len(wanted) and all(
            have == (indent + want if want else "") or (not want and not have.strip())
            for have, want in zip(window, wanted, strict=True)
        ):
            return True
    return False


def test_the_guide_has_samples_of_every_kind():
    languages = {match["language"] for match in BLOCK.finditer(GUIDE.read_text())}

    assert languages == {"json", "python", "javascript", "shell"}


@pytest.mark.parametrize("language", ["python", "javascript"])
def test_every_code_sample_is_an_excerpt_of_an_example_that_ci_runs(language):
    for source, code in samples(language):
        assert source, f"a {language} sample names no source file:\n{code}"
        assert source.startswith("examples/"), source
        assert is_excerpt_of(code, (ROOT / source).read_text()), f"not in {source} as written:\n{code}"


def test_the_excerpt_check_refuses_a_sample_that_drifted():
    text = "def f():\n    a = 1\n    return a\n"

    assert is_excerpt_of("a = 1\nreturn a\n", text)
    assert not is_excerpt_of("a = 2\nreturn a\n", text)


def test_the_sample_event_is_valid_for_its_asyncapi_message(committed_document):
    [(_, code)] = samples("json")
    event = json.loads(code)
    key = message_key(schema_of(event["type"], event["schemaversion"]))
    registry = Registry().with_resource(
        "urn:asyncapi", Resource.from_contents(committed_document, default_specification=DRAFT7)
    )
    validator = Draft7Validator({"$ref": f"urn:asyncapi#/components/messages/{key}/payload"}, registry=registry)

    assert [error.message for error in validator.iter_errors(event)] == []


@pytest.mark.django_db
def test_every_command_in_the_guide_runs(alice, bob, topology, capsys):
    Message.objects.create(sender=alice, receiver=bob, content="to be replayed")
    relay_pending_events()
    commands = [line for _, code in samples("shell") for line in code.splitlines() if line.strip()]

    assert commands
    for command in commands:
        words = shlex.split(command)
        assert words[:2] == ["python", "manage.py"], command
        call_command(*words[2:])
    assert "is current" in capsys.readouterr().out
