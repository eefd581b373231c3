"""Operator commands' argument values: huge, odd and malformed ones are usage errors, never tracebacks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command

from outbox.command_arguments import LONGEST_DURATION, parse_batch_size, parse_duration, parse_moment


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90s", 90), ("15m", 900), ("12h", 43200), ("7d", 604800), ("2w", 1209600), ("1.5h", 5400), ("0s", 0)],
)
def test_durations(text, expected):
    assert parse_duration(text) == timedelta(seconds=expected)


def test_the_longest_duration_is_accepted():
    assert parse_duration(f"{LONGEST_DURATION.days}d") == LONGEST_DURATION


@pytest.mark.parametrize(
    "text",
    ["99999999999d", "999999999d", "36526d", "5219w", "9" * 400 + "s", "1" + "0" * 5000 + "s"],
)
def test_a_duration_too_long_for_a_date_is_refused_naming_the_longest(text):
    with pytest.raises(ValueError, match=r"is longer than 36525d \(100 years\), the longest duration accepted"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["seven days", "", "7", "-7d", "1e9d", "inf d", "nan s", "²d", "٣d", "7 d 2h"])
def test_a_malformed_duration_is_refused_naming_the_form(text):
    with pytest.raises(ValueError, match="is not a duration like 90s, 15m, 12h, 7d or 2w"):
        parse_duration(text)


@pytest.mark.parametrize(("text", "expected"), [("1", 1), (" 500 ", 500), ("100000", 100_000)])
def test_batch_sizes(text, expected):
    assert parse_batch_size(text) == expected


@pytest.mark.parametrize("text", ["0", "-1", "100001", "99999999999999999999", "1.5", "²", "٣", "", "1" * 5000])
def test_a_batch_size_out_of_range_or_malformed_is_refused(text):
    with pytest.raises(ValueError, match="is not a batch size: a whole number from 1 to 100,000"):
        parse_batch_size(text)


# Past the ends of the calendar once in UTC; PostgreSQL holds them, Python keeps them with their offset.
EDGE_MOMENTS = ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00")


@pytest.mark.parametrize("text", EDGE_MOMENTS)
def test_moments_at_the_ends_of_the_calendar_keep_their_offset(text):
    assert parse_moment(text).isoformat() == text


@pytest.mark.parametrize("text", ["2026-11-24T25:00", "2026-02-30", "10000-01-01", "yesterday", "2026-11-24\x00"])
def test_a_malformed_moment_is_refused_naming_the_form(text):
    with pytest.raises(ValueError, match="is not an ISO 8601 date or time like 2026-11-24"):
        parse_moment(text)


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (["--older-than", "99999999999d"], "'99999999999d' is longer than 36525d"),
        (["--older-than", "999999999d"], "is longer than 36525d"),
        (["--older-than", "seven days"], "is not a duration"),
        (["--older-than", "7d", "--batch-size", "99999999999999999999"], "is not a batch size"),
        (["--older-than", "7d", "--batch-size", "0"], "is not a batch size"),
    ],
)
def test_outbox_prune_refuses_huge_and_odd_values_with_a_clear_error(arguments, error):
    with pytest.raises(CommandError, match=error):
        call_command("outbox_prune", *arguments)


@pytest.mark.django_db
@pytest.mark.parametrize("option", ["--since", "--until"])
@pytest.mark.parametrize("text", EDGE_MOMENTS)
def test_outbox_retry_takes_moments_at_the_ends_of_the_calendar(option, text, capsys):
    call_command("outbox_retry", "--list", option, text)

    assert capsys.readouterr().out == "no dead events match\n"


@pytest.mark.django_db
@pytest.mark.parametrize("option", ["--since", "--until"])
@pytest.mark.parametrize("text", EDGE_MOMENTS)
def test_outbox_replay_takes_moments_at_the_ends_of_the_calendar(option, text, broker_namespace, capsys):
    call_command("outbox_replay", "--dry-run", option, text)

    assert "dry run: nothing sent" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("since", "until"),
    [("2026-11-24T10:00Z", "2026-11-24T09:00Z"), ("2026-11-24", "2026-11-24"), (EDGE_MOMENTS[1], EDGE_MOMENTS[0])],
)
def test_outbox_retry_refuses_a_window_that_ends_before_it_starts(since, until):
    with pytest.raises(CommandError, match=r"--since \(.*\) must be before --until"):
        call_command("outbox_retry", "--list", "--since", since, "--until", until)
