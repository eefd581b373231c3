"""`python manage.py broker_permissions`: the `rabbitmqctl set_permissions` lines of every broker role."""

from __future__ import annotations

import shlex

from django.core.management.base import BaseCommand, CommandError

from messaging.topology import broker_permissions, team_permissions

# The user names docs/security.md and the compose stack give each role.
ROLE_USERS = {
    "relay": "messaging-relay",
    "consumer": "messaging-consumer",
    "replay": "messaging-replay",
    "monitor": "messaging-monitor",
}


class Command(BaseCommand):
    help = (
        "Print the rabbitmqctl set_permissions line of each role of this service (relay, consumer, replay, "
        "monitor), least privilege; --team PREFIX adds the line for another team's consumer."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--vhost", default="/", help="the RabbitMQ virtual host (default /)")
        parser.add_argument(
            "--namespace-pattern",
            default="",
            help="a regex matching BROKER_NAMESPACE, for a vhost whose names carry one (tests)",
        )
        parser.add_argument(
            "--user", action="append", default=[], metavar="ROLE=NAME", help="another user name for a role"
        )
        parser.add_argument("--team", action="append", default=[], metavar="PREFIX", help="another team's user")
        parser.add_argument(
            "--tsv", action="store_true", help="user, configure, write, read separated by tabs (for scripts)"
        )

    def handle(
        self, *args, vhost: str, namespace_pattern: str, user: list[str], team: list[str], tsv: bool, **options
    ) -> None:
        users = dict(ROLE_USERS)
        for assignment in user:
            role, _, name = assignment.partition("=")
            if role not in users or not name:
                raise CommandError(f"--user takes ROLE=NAME with ROLE one of {', '.join(users)}; got {assignment!r}")
            users[role] = name
        lines = [(users[role], permissions) for role, permissions in broker_permissions(namespace_pattern).items()]
        try:
            lines += [(prefix, team_permissions(prefix, namespace_pattern)) for prefix in team]
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        for name, permissions in lines:
            regexes = [permissions.configure, permissions.write, permissions.read]
            if tsv:
                self.stdout.write("\t".join([name, *regexes]))
            else:
                self.stdout.write(shlex.join(["rabbitmqctl", "set_permissions", "-p", vhost, name, *regexes]))
