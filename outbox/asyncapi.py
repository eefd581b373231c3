"""An AsyncAPI 3.0 document of an event stream, generated from the schema registry and a topology.

Nothing in it is written by hand: one message per registered event type and version (its `data`
schema inside the CloudEvents envelope `outbox.envelope` writes), one channel per event type on
the topology's events exchange (routing key = type), and the topology's consumer queues and
their dead-letter queues as examples of a subscriber's own topology.
https://www.asyncapi.com/docs/reference/specification/v3.0.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from kombu import Queue

from outbox.broker import Topology
from outbox.dead_letters import CONSUMER_HEADER, ORIGINAL_ROUTING_KEY_HEADER, REASON_HEADER
from outbox.envelope import (
    AGGREGATE_ID_HEADER,
    AGGREGATE_TYPE_ATTRIBUTE,
    CONTENT_TYPE,
    DATA_CONTENT_TYPE,
    PERSISTENT,
    SCHEMA_VERSION_ATTRIBUTE,
    SEQUENCE_ATTRIBUTE,
    SPEC_VERSION,
    TRACE_ATTRIBUTES,
    data_schema_url,
)
from outbox.partition_topology import Partitions
from outbox.schemas import EventSchema, registered_schemas

ASYNCAPI_VERSION = "3.0.0"
AMQP_BINDING_VERSION = "0.3.0"


@dataclass(frozen=True)
class ContractInfo:
    """What the document says about the service that publishes the events."""

    title: str
    version: str
    description: str
    source: str
    broker_host: str = "127.0.0.1:5672"
    broker_vhost: str = "/"


def message_key(schema: EventSchema) -> str:
    """The document's key of one event type and version: `message_created_v1`."""
    return f"{_slug(schema.event_type)}_v{schema.version}"


def _slug(name: str) -> str:
    return "".join(character if character.isalnum() else "_" for character in name)


def build_asyncapi_document(
    topology: Topology, info: ContractInfo, *, schema_base_url: str | None = None
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every registered event as `topology` routes it."""
    schemas = registered_schemas()
    by_type: dict[str, list[EventSchema]] = {}
    for schema in schemas:
        by_type.setdefault(schema.event_type, []).append(schema)
    exchange = {
        "name": topology.events.name,
        "type": topology.events.type,
        "durable": bool(topology.events.durable),
        "autoDelete": bool(topology.events.auto_delete),
        "vhost": info.broker_vhost,
    }
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for event_type, versions in by_type.items():
        channel = _slug(event_type)
        channels[channel] = {
            "address": event_type,
            "title": f"{event_type} on {topology.events.name}",
            "description": f"Events of type `{event_type}`, published to the `{topology.events.name}` "
            f"topic exchange with the routing key `{event_type}`. Bind your queue with this key "
            "(or a pattern matching it).",
            "messages": {message_key(s): {"$ref": f"#/components/messages/{message_key(s)}"} for s in versions},
            "bindings": {"amqp": {"is": "routingKey", "exchange": exchange, "bindingVersion": AMQP_BINDING_VERSION}},
        }
        operations[f"publish_{channel}"] = {
            "action": "send",
            "title": f"Publish {event_type}",
            "summary": "The relay publishes each committed outbox event once confirmed by the broker "
            "(at least once; deduplicate on `id`).",
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [{"$ref": f"#/channels/{channel}/messages/{message_key(s)}"} for s in versions],
            "bindings": {
                "amqp": {
                    "deliveryMode": PERSISTENT,
                    "mandatory": True,
                    "timestamp": True,
                    "bindingVersion": AMQP_BINDING_VERSION,
                }
            },
        }
    for consumer, queue in topology.queues.items():
        routed = [s for s in schemas if topology.routes_to(consumer, s.event_type)]
        channel = f"queue_{_slug(consumer)}"
        keys = ", ".join(f"`{key}`" for key in topology.binding_keys_for(consumer))
        messages = {message_key(s): {"$ref": f"#/components/messages/{message_key(s)}"} for s in routed}
        partitions = topology.partitions_for(consumer)
        if partitions is not None:
            channels[channel] = _partitions_channel(consumer, partitions, info, keys=keys, messages=messages)
        else:
            channels[channel] = _queue_channel(
                queue,
                info,
                description=f"Example: the `{consumer}` consumer's own queue, bound to `{topology.events.name}` "
                f"with {keys}. Bind a queue of your own the same way; never consume from this one.",
                messages=messages,
            )
        operations[f"consume_{_slug(consumer)}"] = {
            "action": "receive",
            "title": f"The {consumer} consumer",
            "summary": "Acknowledge after the event is applied; refuse poison to the dead-letter queue.",
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [{"$ref": f"#/channels/{channel}/messages/{message_key(s)}"} for s in routed],
            "bindings": {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING_VERSION}},
        }
    for consumer, queue in topology.dead_letter_queues.items():
        channels[f"dead_letter_{_slug(consumer)}"] = _queue_channel(
            queue,
            info,
            description=f"Example: where the `{consumer}` consumer sends what it can never apply, with the "
            f"reason in the `{REASON_HEADER}` header, its name in `{CONSUMER_HEADER}` and the original "
            f"routing key in `{ORIGINAL_ROUTING_KEY_HEADER}`.",
            messages={},
        )
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {"title": info.title, "version": info.version, "description": info.description},
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "broker": {
                "host": info.broker_host,
                "pathname": info.broker_vhost,
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "RabbitMQ; the service's BROKER_URL names the one of a deployment.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": {message_key(s): _message(s, info, schema_base_url) for s in schemas},
            "schemas": {message_key(s): s.schema for s in schemas},
        },
    }


def _queue_channel(queue: Queue, info: ContractInfo, *, description: str, messages: dict) -> dict[str, Any]:
    return {
        "address": queue.name,
        "description": description,
        "messages": messages,
        "bindings": {
            "amqp": {
                "is": "queue",
                "queue": {
                    "name": queue.name,
                    "durable": bool(queue.durable),
                    "exclusive": bool(queue.exclusive),
                    "autoDelete": bool(queue.auto_delete),
                    "vhost": info.broker_vhost,
                },
                "bindingVersion": AMQP_BINDING_VERSION,
            }
        },
        "x-queue-arguments": dict(queue.queue_arguments or {}),
    }


def _partitions_channel(
    consumer: str, partitions: Partitions, info: ContractInfo, *, keys: str, messages: dict
) -> dict[str, Any]:
    # One channel for the N partition queues, the partition number as its address parameter.
    template = partitions.queues[0]
    channel = _queue_channel(template, info, description="", messages=messages)
    last = partitions.count - 1
    address = template.name.removesuffix(".p0") + ".p{partition}"
    channel["address"] = address
    channel["bindings"]["amqp"]["queue"]["name"] = address
    channel["parameters"] = {
        "partition": {"description": f"The partition number, 0 to {last} (CONSUMER_PARTITIONS - 1)."}
    }
    channel["description"] = (
        f"Our own `{consumer}` consumer's {partitions.count} partition queues (`CONSUMER_PARTITIONS`, set in "
        f"the environment of the relay and of every consumer process alike), fed by the consistent-hash "
        f"exchange `{partitions.exchange.name}` on the `{AGGREGATE_ID_HEADER}` header, itself bound with "
        f"{keys}: every event of one aggregate lands on one partition. Not for other teams: bind a queue of "
        "your own to the events exchange instead."
    )
    channel["x-hash-exchange"] = {
        "name": partitions.exchange.name,
        "type": partitions.exchange.type,
        "arguments": dict(partitions.exchange.arguments or {}),
    }
    return channel


def _message(schema: EventSchema, info: ContractInfo, schema_base_url: str | None) -> dict[str, Any]:
    key = message_key(schema)
    return {
        "name": key,
        "title": f"{schema.event_type} v{schema.version}",
        "contentType": CONTENT_TYPE,
        "correlationId": {
            "description": "The event id: the AMQP `message_id` property carries it too. Deduplicate on it.",
            "location": "$message.payload#/id",
        },
        "payload": _envelope(schema, info, schema_base_url),
        "bindings": {
            "amqp": {
                "contentEncoding": "utf-8",
                "messageType": schema.event_type,
                "bindingVersion": AMQP_BINDING_VERSION,
            }
        },
    }


def _envelope(schema: EventSchema, info: ContractInfo, schema_base_url: str | None) -> dict[str, Any]:
    """The CloudEvents 1.0 structured-mode document of one event type and version."""
    return {
        "type": "object",
        "description": "A CloudEvents 1.0 event in structured mode (JSON).",
        "required": [
            "specversion",
            "id",
            "source",
            "type",
            "subject",
            "time",
            "datacontenttype",
            "dataschema",
            SCHEMA_VERSION_ATTRIBUTE,
            AGGREGATE_TYPE_ATTRIBUTE,
            SEQUENCE_ATTRIBUTE,
            "data",
        ],
        "properties": {
            "specversion": {"type": "string", "const": SPEC_VERSION},
            "id": {"type": "string", "format": "uuid", "description": "Unique per event; deduplicate on it."},
            "source": {"type": "string", "const": info.source},
            "type": {"type": "string", "const": schema.event_type},
            "subject": {"type": "string", "description": "The id of the aggregate the event is about."},
            "time": {"type": "string", "format": "date-time", "description": "When the change committed (UTC)."},
            "datacontenttype": {"type": "string", "const": DATA_CONTENT_TYPE},
            "dataschema": {
                "type": "string",
                "format": "uri",
                "const": data_schema_url(schema.event_type, schema.version, schema_base_url),
            },
            SCHEMA_VERSION_ATTRIBUTE: {"type": "integer", "const": schema.version},
            AGGREGATE_TYPE_ATTRIBUTE: {"type": "string", "description": "The kind of aggregate `subject` names."},
            SEQUENCE_ATTRIBUTE: {
                "type": "string",
                "pattern": "^[0-9]{20}$",
                "description": "Increases with every event; order one subject's events by it.",
            },
            TRACE_ATTRIBUTES[0]: {
                "type": "string",
                "description": "W3C trace context of the producer's span (CloudEvents distributed tracing); "
                "present only when the event was sent inside a trace.",
            },
            TRACE_ATTRIBUTES[1]: {"type": "string", "description": "W3C trace state, with `traceparent`."},
            "data": {"$ref": f"#/components/schemas/{message_key(schema)}"},
        },
        "additionalProperties": False,
    }


class _PlainDumper(yaml.SafeDumper):
    # A reader of the document sees every value where it applies, not an anchor to look up.
    def ignore_aliases(self, data: Any) -> bool:
        return True


def render_yaml(document: dict[str, Any]) -> str:
    """`document` as YAML, keys in the builder's order, so that a change shows as a small diff."""
    return yaml.dump(document, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True, width=110)
