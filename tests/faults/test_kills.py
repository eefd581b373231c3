"""The fault suite: real relays and consumers killed, cut off and starved while messages flow.

Each case ends with the same check (ChaosReport.ok): every message has exactly one notification,
every read reached its notification, every event is published, none is stuck pending, and the
consumer applied each message's events in outbox order.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from django.core.management import CommandError, call_command

from tooling.chaos import ChaosPlan, ChaosRun

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

# About eight seconds of writing at 100 messages per second; each case switches its faults on.
CALM = ChaosPlan(
    messages=800,
    relays=2,
    consumers=2,
    writers=2,
    write_rate=100,
    kill_every=None,
    failpoints="",
    settle_timeout=120,
)


def run(plan: ChaosPlan, tmp_path):
    report = ChaosRun(plan, log_dir=tmp_path).run()
    summary = "\n".join(report.lines())
    print(summary)
    assert report.ok, summary
    assert report.published == report.events, summary
    assert report.messages_written == plan.messages, summary
    # Most of the work happened while the faults did, not in the calm afterwards.
    assert report.published_under_faults >= report.events // 2, summary
    return report, summary


def test_relays_killed_at_random_moments_and_between_confirm_and_commit_lose_and_double_nothing(tmp_path):
    plan = replace(
        CALM,
        consumers=1,
        kill_every=1.0,
        kill_targets=("relay",),
        failpoints="relay.after_claim=0.01,relay.after_confirm=0.02,relay.after_commit=0.01",
        seed=11,
    )

    report, summary = run(plan, tmp_path)

    assert report.kills >= 5, summary
    assert report.failpoint_deaths >= 1, summary


def test_consumers_killed_after_commit_before_ack_and_at_random_lose_and_double_nothing(tmp_path):
    plan = replace(
        CALM,
        relays=1,
        kill_every=1.0,
        kill_targets=("consumer",),
        # The assertion below needs one death after a commit: at 0.005 per batch two runs of five
        # had none (and no duplicate to absorb); at 0.05 four runs had 10-16 failpoint deaths.
        failpoints="consumer.after_commit=0.05,consumer.before_commit=0.002",
        seed=12,
    )

    report, summary = run(plan, tmp_path)

    assert report.kills >= 5, summary
    # A consumer that died after its commit left a delivery that came back and was absorbed.
    assert report.duplicates_absorbed >= 1, summary


def test_broker_connections_cut_under_every_worker_lose_and_double_nothing(tmp_path):
    report, summary = run(replace(CALM, messages=300, write_rate=75, cut_broker_every=0.7, seed=13), tmp_path)

    assert report.broker_cuts >= 3, summary


def test_database_sessions_terminated_mid_batch_lose_and_double_nothing(tmp_path):
    report, summary = run(replace(CALM, messages=300, write_rate=75, terminate_db_every=0.7, seed=14), tmp_path)

    assert report.db_terminations >= 3, summary


# Every fault at once, three consumer processes among the workers.
MIXED = replace(
    CALM,
    messages=1000,
    relays=3,
    consumers=3,
    writers=4,
    read_share=0.5,
    kill_every=1.0,
    cut_broker_every=1.5,
    terminate_db_every=2.0,
    failpoints=ChaosPlan().failpoints,
    settle_timeout=180,
)


def test_three_relays_three_consumers_and_writers_under_every_fault_keep_per_message_order(tmp_path):
    report, summary = run(replace(MIXED, seed=15), tmp_path)

    assert report.out_of_order == 0, summary
    assert report.read_marked > 100, summary
    assert report.kills >= 5, summary


def test_three_consumers_on_four_partitions_under_every_fault_spread_hand_over_and_keep_per_message_order(tmp_path):
    # Faults a little sparser than MIXED's: a consumer process needs a second or two to start, and
    # the partitions can spread only between faults.
    plan = replace(
        MIXED,
        messages=1500,
        relays=2,
        partitions=4,
        kill_every=1.5,
        cut_broker_every=2.0,
        terminate_db_every=3.0,
        settle_timeout=120,
        seed=16,
    )

    report, summary = run(plan, tmp_path)

    assert report.out_of_order == 0, summary
    assert report.consumer_kills >= 3, summary
    assert report.broker_cuts >= 3, summary
    assert report.db_terminations >= 3, summary
    # Spread: once the faults stop, every consumer process holds partitions at the same moment.
    # (Under faults a second or two apart they may not get to share: a restarted process needs
    # about that long to start, so the count under faults is reported, not required.)
    assert report.partition_holders_settled == 3, summary
    # Handed over: killed, cut off or terminated consumers' partitions were taken again, many times.
    assert report.partitions_taken >= 3 * plan.partitions, summary


def test_the_chaos_command_refuses_fewer_than_one_partition():
    with pytest.raises(CommandError, match="--partitions must be at least 1"):
        call_command("outbox_chaos", "--partitions", "0")
