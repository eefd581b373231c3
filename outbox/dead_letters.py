"""Publishing refused deliveries to the dead-letter exchange, with the reason in a header.

RabbitMQ's own dead-lettering (reject without requeue) records only "rejected"; an operator
needs to know why. So a consumer republishes the delivery to the dead-letter exchange with
`x-dead-letter-reason`, waits for the broker's confirm, and only then acks the original. On its
own connection: waiting for a confirm on the consuming connection would dispatch deliveries
re-entrantly.
"""

from __future__ import annotations

from kombu import Exchange, Producer

from outbox.broker import broker_connection

REASON_HEADER = "x-dead-letter-reason"
CONSUMER_HEADER = "x-dead-letter-consumer"
ORIGINAL_ROUTING_KEY_HEADER = "x-original-routing-key"
# Header values stay short: a reason is a line for an operator, not a dump.
MAX_REASON_LENGTH = 500


class DeadLetterPublisher:
    """Republishes a kombu delivery to a dead-letter exchange and waits for the confirm."""

    def __init__(self, *, url: str, exchange: Exchange, routing_key: str) -> None:
        self._url = url
        self._exchange = exchange
        self._routing_key = routing_key
        self._connection = None
        self._producer: Producer | None = None

    def publish(self, message, *, reason: str, consumer: str) -> None:
        """Publish `message` with the reason; raises the broker's error when it is not confirmed."""
        if self._producer is None:
            self._connection = broker_connection(self._url, transport_options={"confirm_publish": True})
            self._producer = Producer(self._connection.channel(), exchange=self._exchange)
        headers = dict(message.headers or {})
        headers.update(
            {
                REASON_HEADER: reason[:MAX_REASON_LENGTH],
                CONSUMER_HEADER: consumer,
                ORIGINAL_ROUTING_KEY_HEADER: message.delivery_info.get("routing_key", ""),
            }
        )
        properties = message.properties
        self._producer.publish(
            message.body,
            routing_key=self._routing_key,
            headers=headers,
            content_type=message.content_type or "application/octet-stream",
            content_encoding=message.content_encoding or "binary",
            message_id=properties.get("message_id"),
            type=properties.get("type"),
            delivery_mode=2,
            mandatory=True,
            retry=False,
        )

    def close(self) -> None:
        connection, self._connection, self._producer = self._connection, None, None
        if connection is not None:
            connection.release()
