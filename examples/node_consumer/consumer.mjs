// A consumer of the messaging service's events in node: amqplib, the official CloudEvents SDK, ajv.
// It shares no code with the service. It binds a durable queue of its own to the events exchange,
// parses every delivery as a structured-mode CloudEvent, validates `data` against the schema its
// `dataschema` URL serves (fetched once per URL, only from the service's schema base URL), applies
// each event once (deduplicating on the event id) and prints one line per delivery:
//
//   applied type=message.created subject=<message id> sequence=00000000000000000042 id=<event id>
//   duplicate id=<event id>
//   rejected id=<event id or -> reason=<why>
//
// Configuration (environment): BROKER_URL, EVENTS_EXCHANGE, QUEUE, BINDING_KEY, SCHEMA_BASE_URL.
import amqp from "amqplib";
import { Ajv } from "ajv";
import addFormats from "ajv-formats";
import { HTTP } from "cloudevents";

const config = {
  brokerUrl: process.env.BROKER_URL ?? "amqp://guest:guest@127.0.0.1:5672/",
  exchange: process.env.EVENTS_EXCHANGE ?? "messaging.events",
  queue: process.env.QUEUE ?? "example-team.node-consumer",
  bindingKey: process.env.BINDING_KEY ?? "message.*",
  schemaBaseUrl: (process.env.SCHEMA_BASE_URL ?? "http://127.0.0.1:8000/api/events/schemas").replace(/\/$/, "") + "/",
};

class Rejected extends Error {}

// --- checking a delivery --------------------------------------------------------------------------

const ajv = new Ajv({ allErrors: false, strict: false });
addFormats(ajv);
const validators = new Map();

async function validatorFor(url) {
  if (typeof url !== "string" || !url.startsWith(config.schemaBaseUrl)) {
    throw new Rejected("dataschema is not one of the service's schemas");
  }
  if (!validators.has(url)) {
    const response = await fetch(url);
    if (!response.ok) throw new Rejected(`schema ${url} answered ${response.status}`);
    const schema = await response.json();
    delete schema.$schema; // ajv's default dialect is the schemas' own, draft-07
    validators.set(url, ajv.compile(schema));
  }
  return validators.get(url);
}

async function checkEvent(message) {
  const body = message.content.toString("utf8");
  let document;
  try {
    document = JSON.parse(body);
  } catch {
    throw new Rejected("not JSON");
  }
  // The SDK makes up an id and a time for a document without them: a real event brings its own.
  if (document?.specversion !== "1.0" || !document.id || !document.time) {
    throw new Rejected("not a CloudEvents 1.0 document");
  }
  let event;
  try {
    // Structured mode: the whole CloudEvent is the body; the SDK parses it and checks its attributes.
    event = HTTP.toEvent({
      headers: { "content-type": message.properties.contentType ?? "application/cloudevents+json" },
      body,
    });
    event.validate();
  } catch (error) {
    throw new Rejected(`not a valid CloudEvent (${String(error.message).split("\n")[0]})`);
  }
  if (!event.dataschema || !event.subject || !event.sequence) {
    throw new Rejected("missing attributes dataschema, subject or sequence");
  }
  const validate = await validatorFor(event.dataschema);
  if (!validate(event.data)) {
    const [error] = validate.errors;
    throw new Rejected(`data at ${error.instancePath || "(root)"} fails '${error.keyword}'`);
  }
  return event;
}

// The id a refused delivery claims, for the report; `-` when it names none.
function eventIdOf(content) {
  try {
    return JSON.parse(content.toString("utf8"))?.id ?? "-";
  } catch {
    return "-";
  }
}

// --- the inbox: each event applied once -------------------------------------------------------------

// In memory for the example; a real service keeps it in its database, written in the transaction
// that applies the event, before the ack.
const applied = new Set();

function applyOnce(event) {
  if (applied.has(event.id)) return false;
  applied.add(event.id);
  console.log(`applied type=${event.type} subject=${event.subject} sequence=${event.sequence} id=${event.id}`);
  return true;
}

// --- the loop ---------------------------------------------------------------------------------------

const connection = await amqp.connect(config.brokerUrl);
const channel = await connection.createChannel();
await channel.assertExchange(config.exchange, "topic", { durable: true });
// A quorum queue: replicated, and it counts redeliveries. Add deadLetterExchange to keep what you refuse.
await channel.assertQueue(config.queue, { durable: true, arguments: { "x-queue-type": "quorum" } });
await channel.bindQueue(config.queue, config.exchange, config.bindingKey);
// One delivery at a time: each subject's events are applied in the order they arrive.
await channel.prefetch(1);
await channel.consume(config.queue, async (message) => {
  if (message === null) return;
  try {
    const event = await checkEvent(message);
    if (!applyOnce(event)) console.log(`duplicate id=${event.id}`);
    channel.ack(message);
  } catch (error) {
    if (!(error instanceof Rejected)) throw error;
    console.log(`rejected id=${eventIdOf(message.content)} reason=${error.message}`);
    channel.nack(message, false, false);
  }
});
console.log(`ready queue=${config.queue} binding=${config.bindingKey}`);

const stop = async () => {
  await channel.close();
  await connection.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
