// The ops dashboard: renders a snapshot of outbox.status (embedded in the page, then polled from
// status.json) into the page and draws the rate charts as inline SVG. No library, no network
// beyond this site. Text from the server is only ever set as textContent, never as HTML.
"use strict";

(function () {
  const root = document.getElementById("ops");
  const statusUrl = root.dataset.statusUrl;
  // Absent for users who may only look: their rows get no "Send again" button.
  const retryUrl = root.dataset.retryUrl;
  const csrfToken = root.dataset.csrfToken;
  const refreshMs = Number(root.dataset.refreshSeconds) * 1000;
  const SVG = "http://www.w3.org/2000/svg";

  function byId(id) {
    return document.getElementById(id);
  }

  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const cell of cells) tr.append(cell instanceof Node ? cell : element("td", cell));
    return tr;
  }

  function fillRows(tbodyId, rows, emptyText, columns) {
    const tbody = byId(tbodyId);
    if (rows.length === 0) {
      const td = element("td", emptyText, "empty");
      td.colSpan = columns;
      tbody.replaceChildren(row([td]));
    } else {
      tbody.replaceChildren(...rows);
    }
  }

  function duration(seconds) {
    if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes} min ${Math.floor(seconds % 60)} s`;
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return `${hours} h ${minutes % 60} min`;
    return `${Math.floor(hours / 24)} d ${hours % 24} h`;
  }

  function when(iso, now) {
    if (!iso) return "–";
    const ago = (now - Date.parse(iso)) / 1000;
    const clock = new Date(iso).toLocaleTimeString();
    return `${clock} (${duration(Math.max(0, ago))} ago)`;
  }

  function drawChart(svgId, buckets, field, bucketSeconds) {
    const svg = byId(svgId);
    const width = 600;
    const height = 120;
    const top = 14;
    const bottom = 16;
    const values = buckets.map((bucket) => bucket[field] / bucketSeconds);
    const max = Math.max(1, ...values);
    const barWidth = width / Math.max(1, values.length);
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("preserveAspectRatio", "none");
    const parts = [];
    values.forEach((value, index) => {
      const barHeight = ((height - top - bottom) * value) / max;
      const bar = document.createElementNS(SVG, "rect");
      bar.setAttribute("x", (index * barWidth + 0.5).toFixed(1));
      bar.setAttribute("y", (height - bottom - barHeight).toFixed(1));
      bar.setAttribute("width", Math.max(0.5, barWidth - 1).toFixed(1));
      bar.setAttribute("height", barHeight.toFixed(1));
      bar.setAttribute("class", index === values.length - 1 ? "bar current" : "bar");
      const title = document.createElementNS(SVG, "title");
      const start = new Date(buckets[index].start).toLocaleTimeString();
      title.textContent = `${start}: ${value.toFixed(1)}/s (${buckets[index][field]} events)`;
      bar.append(title);
      parts.push(bar);
    });
    const label = (x, y, text, anchor) => {
      const node = document.createElementNS(SVG, "text");
      node.setAttribute("x", x);
      node.setAttribute("y", y);
      node.setAttribute("text-anchor", anchor);
      node.setAttribute("class", "axis");
      node.textContent = text;
      return node;
    };
    const baseline = document.createElementNS(SVG, "line");
    baseline.setAttribute("x1", 0);
    baseline.setAttribute("x2", width);
    baseline.setAttribute("y1", height - bottom + 0.5);
    baseline.setAttribute("y2", height - bottom + 0.5);
    baseline.setAttribute("class", "baseline");
    const windowMinutes = Math.round((values.length * bucketSeconds) / 60);
    parts.push(
      baseline,
      label(2, 10, `max ${max.toFixed(1)}/s`, "start"),
      label(2, height - 3, `−${windowMinutes} min`, "start"),
      label(width - 2, height - 3, "now", "end"),
    );
    svg.replaceChildren(...parts);
  }

  function retryButton(eventId) {
    if (!retryUrl) return element("td", "–");
    const form = element("form");
    form.method = "post";
    form.action = retryUrl;
    for (const [name, value] of [["csrfmiddlewaretoken", csrfToken], ["event_id", eventId]]) {
      const input = element("input");
      input.type = "hidden";
      input.name = name;
      input.value = value;
      form.append(input);
    }
    const button = element("button", "Send again");
    button.type = "submit";
    button.dataset.eventId = eventId;
    form.append(button);
    const td = element("td");
    td.append(form);
    return td;
  }

  function render(snapshot) {
    const now = Date.parse(snapshot.taken_at);
    const backlog = snapshot.backlog;
    byId("taken-at").textContent = new Date(snapshot.taken_at).toLocaleTimeString();
    byId("backlog-pending").textContent = backlog.pending;
    byId("backlog-oldest-age").textContent = backlog.pending ? duration(backlog.oldest_pending_age_seconds) : "–";
    byId("backlog-dead").textContent = backlog.dead;
    byId("published-rate").textContent = snapshot.rates.published_per_second.toFixed(1);
    byId("consumed-rate").textContent = snapshot.rates.consumed_per_second.toFixed(1);

    const rates = snapshot.rates;
    drawChart("chart-published", rates.buckets, "published", rates.bucket_seconds);
    drawChart("chart-consumed", rates.buckets, "consumed", rates.bucket_seconds);

    const workerState = (worker) => {
      if (!worker.alive) return "stalled";
      return worker.failing ? `failing (${worker.consecutive_failures} in a row)` : "alive";
    };
    fillRows(
      "workers",
      snapshot.workers.map((worker) =>
        row([
          worker.kind,
          element("td", worker.worker_id, "mono"),
          `${worker.hostname} / ${worker.pid}`,
          when(worker.beat_at, now),
          element("td", workerState(worker), worker.alive && !worker.failing ? "ok" : "bad"),
          worker.last_error
            ? element("td", `${worker.last_error} (${when(worker.last_error_at, now)})`, "error-text")
            : "–",
        ]),
      ),
      "No relay or consumer has a heartbeat.",
      6,
    );

    byId("dead-count").textContent = backlog.dead > snapshot.dead_events.length
      ? `(newest ${snapshot.dead_events.length} of ${backlog.dead})`
      : "";
    fillRows(
      "dead-events",
      snapshot.dead_events.map((event) => {
        const tr = row([
          element("td", event.id, "mono"),
          event.event_type,
          element("td", `${event.aggregate_type}:${event.aggregate_id}`, "mono"),
          event.attempts,
          when(event.dead_at, now),
          element("td", event.last_error, "error-text"),
          element("td", event.trace_id, "mono trace-id"),
          retryButton(event.id),
        ]);
        tr.dataset.eventId = event.id;
        return tr;
      }),
      "No dead events.",
      8,
    );

    const broker = snapshot.broker;
    const brokerError = byId("broker-error");
    brokerError.hidden = broker.reachable;
    brokerError.textContent = broker.reachable ? "" : `Broker ${broker.url} unreachable: ${broker.error}`;
    const depths = broker.dead_letter_queues.filter((queue) => queue.depth !== null);
    byId("dlq-total").textContent = broker.reachable
      ? depths.reduce((total, queue) => total + queue.depth, 0)
      : "broker down";
    fillRows(
      "dead-letter-queues",
      broker.dead_letter_queues.map((queue) =>
        row([
          queue.consumer,
          element("td", queue.queue, "mono"),
          queue.depth === null ? element("td", queue.error, "error-text") : element("td", queue.depth),
        ]),
      ),
      broker.reachable ? "The topology has no dead-letter queue." : "Unknown while the broker is unreachable.",
      3,
    );

    const partitions = snapshot.partitions;
    fillRows(
      "partitions",
      [
        ...Object.entries(partitions.days_ahead).map(([table, days]) =>
          row([element("td", table, "mono"), element("td", `ready ${days} days ahead`, days > 0 ? "ok" : "bad")]),
        ),
        ...Object.entries(partitions.kept).map(([name, reason]) =>
          row([element("td", name, "mono"), element("td", `kept past retention: ${reason}`, "bad")]),
        ),
        ...Object.entries(partitions.default_rows)
          .filter(([, rows]) => rows > 0)
          .map(([table, rows]) =>
            row([element("td", `${table}_default`, "mono"), element("td", `${rows} rows outside every time partition`, "bad")]),
          ),
      ],
      "The tables are not partitioned.",
      2,
    );

    fillRows(
      "recent-errors",
      snapshot.recent_errors.map((error) =>
        row([
          when(error.at, now),
          element("td", error.source, "mono"),
          element("td", error.error, "error-text"),
          element("td", error.trace_id, "mono trace-id"),
        ]),
      ),
      "No errors in the last hour.",
      4,
    );
  }

  function setState(text, className) {
    const state = byId("refresh-state");
    state.textContent = text;
    state.className = `state ${className}`;
  }

  async function refresh() {
    try {
      const response = await fetch(statusUrl, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "application/json" },
      });
      // A login page (the session ended) or a refusal: say so instead of drawing stale numbers.
      if (response.redirected || response.status === 401 || response.status === 403) {
        setState("signed out: reload to sign in", "bad");
        return;
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      render(await response.json());
      setState("live", "ok");
    } catch (error) {
      setState(`not refreshed (${error.message}); retrying`, "bad");
    }
    window.setTimeout(refresh, refreshMs);
  }

  render(JSON.parse(byId("ops-snapshot").textContent));
  window.setTimeout(refresh, refreshMs);
})();
