// The reconnection loop of wsgisse.js, under `node --test`, against a scripted fetch():
// each call answers the next scripted response (a status, a body that ends, or one that
// stays open). The real browsers run the same behaviour against gunicorn
// (tests/test_client_browser.py, tests/test_client_firefox.py).
import assert from "node:assert/strict";
import { test } from "node:test";

import { WsgisseEventSource } from "../../wsgisse/static/wsgisse.js";

const encoder = new TextEncoder();

// A body of `text`, then either the end (`open` false) or silence until aborted.
function body(text, { open = false, signal } = {}) {
  return new ReadableStream({
    start(controller) {
      if (text) controller.enqueue(encoder.encode(text));
      if (!open) controller.close();
      signal.addEventListener("abort", () => controller.error(new Error("aborted")));
    },
  });
}

function scripted(steps) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url: new URL(url), at: Date.now() });
    const step = steps[Math.min(calls.length - 1, steps.length - 1)];
    if (step.error) throw new TypeError("network error");
    const headers = { "Content-Type": step.type ?? "text/event-stream; charset=utf-8" };
    const stream = step.status === 204 ? null : body(step.text ?? "", { open: step.open, signal: init.signal });
    return new Response(stream, { status: step.status ?? 200, headers });
  };
  return { fetch, calls };
}

async function until(predicate, what, timeout = 3000) {
  const deadline = Date.now() + timeout;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

function record(source) {
  const seen = { data: [], errors: 0, opens: 0 };
  source.onmessage = (event) => seen.data.push(event.data);
  source.onerror = () => (seen.errors += 1);
  source.onopen = () => (seen.opens += 1);
  return seen;
}

const fast = { backoff: { min: 1, max: 20 } };

test("after a network error and a 502 it comes back with ?lastEventId= and loses nothing", async () => {
  const { fetch, calls } = scripted([
    { text: "retry: 5\nid: 1\ndata: a\n\n" },
    { error: true },
    { status: 502, type: "text/html", text: "<h1>502 Bad Gateway</h1>" },
    { text: "id: 2\ndata: b\n\n", open: true },
  ]);
  const source = new WsgisseEventSource("http://h.test/events", { ...fast, fetch });
  const seen = record(source);
  await until(() => seen.data.length === 2, "both events");
  assert.deepEqual(seen.data, ["a", "b"]);
  assert.deepEqual(
    calls.map((call) => call.url.searchParams.get("lastEventId")),
    [null, "1", "1", "1"],
  );
  assert.equal(seen.errors, 3);
  assert.equal(seen.opens, 2);
  assert.equal(source.readyState, 1);
  assert.equal(source.lastEventId, "2");
  source.close();
});

test("a 200 that is not an event stream is a failure, retried", async () => {
  const { fetch, calls } = scripted([{ type: "text/html", text: "login" }, { text: "data: x\n\n", open: true }]);
  const source = new WsgisseEventSource("http://h.test/events", { ...fast, fetch });
  const seen = record(source);
  await until(() => seen.data.length === 1, "the event");
  assert.equal(calls.length, 2);
  source.close();
});

test("a 204 stops it for good", async () => {
  const { fetch, calls } = scripted([{ status: 204 }]);
  const source = new WsgisseEventSource("http://h.test/events", { ...fast, fetch });
  const seen = record(source);
  await until(() => source.readyState === 2, "closed");
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(calls.length, 1);
  assert.equal(source.closedReason, "no-content");
  assert.equal(seen.errors, 1);
});

test("wsgisse-end revoked stops it; onEnd hears the reason", async () => {
  const { fetch, calls } = scripted([
    { text: 'id: 1\ndata: a\n\nevent: wsgisse-end\ndata: {"reason":"revoked"}\n\n', open: true },
  ]);
  const reasons = [];
  const source = new WsgisseEventSource("http://h.test/events", { ...fast, fetch, onEnd: (r) => reasons.push(r) });
  const ends = [];
  source.addEventListener("wsgisse-end", (event) => ends.push(source.readyState));
  await until(() => source.readyState === 2, "closed");
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(reasons, ["revoked"]);
  assert.deepEqual(ends, [2]); // Already CLOSED for the listeners.
  assert.equal(source.closedReason, "revoked");
  assert.equal(calls.length, 1);
});

test("wsgisse-end shutdown: it comes back after the retry sent with it", async () => {
  const { fetch, calls } = scripted([
    { text: 'id: 1\ndata: a\n\nevent: wsgisse-end\ndata: {"reason":"shutdown"}\nretry: 120\n\n' },
    { text: "id: 2\ndata: b\n\n", open: true },
  ]);
  const reasons = [];
  const source = new WsgisseEventSource("http://h.test/events", { ...fast, fetch, onEnd: (r) => reasons.push(r) });
  const seen = record(source);
  await until(() => seen.data.length === 2, "after the reconnection");
  assert.deepEqual(reasons, ["shutdown"]);
  assert.ok(calls[1].at - calls[0].at >= 110, `came back after ${calls[1].at - calls[0].at} ms`);
  assert.equal(calls[1].url.searchParams.get("lastEventId"), "1");
  source.close();
});

test("history lost: the callback gets the server's data, the stream goes on", async () => {
  const lost = '{"lastEventId":"old","oldestId":"5"}';
  const { fetch } = scripted([{ text: `event: wsgisse-history-lost\ndata: ${lost}\n\nid: 6\ndata: a\n\n`, open: true }]);
  const infos = [];
  const source = new WsgisseEventSource("http://h.test/events", {
    ...fast,
    fetch,
    lastEventId: "old",
    onHistoryLost: (info) => infos.push(info),
  });
  const seen = record(source);
  await until(() => seen.data.length === 1, "the event");
  assert.deepEqual(infos, [{ lastEventId: "old", oldestId: "5" }]);
  source.close();
});

test("a silent stream counts as dead after idleTimeout and is resumed", async () => {
  const { fetch, calls } = scripted([
    { text: "retry: 5\nid: 1\ndata: a\n\n", open: true },
    { text: "id: 2\ndata: b\n\n", open: true },
  ]);
  const source = new WsgisseEventSource("http://h.test/events", { ...fast, fetch, idleTimeout: 60 });
  try {
    const seen = record(source);
    await until(() => seen.data.length === 2, "the second connection");
    assert.equal(calls[1].url.searchParams.get("lastEventId"), "1");
    assert.ok(calls[1].at - calls[0].at >= 55);
  } finally {
    source.close();
  }
});

test("close() stops every retry", async () => {
  const { fetch, calls } = scripted([{ status: 502 }]);
  const source = new WsgisseEventSource("http://h.test/events", { ...fast, fetch });
  await until(() => calls.length >= 2, "a retry");
  source.close();
  const made = calls.length;
  await new Promise((resolve) => setTimeout(resolve, 80));
  assert.equal(calls.length, made);
  assert.equal(source.closedReason, "closed");
});

test("an id without data moves the resume point, and names where a multiplexed stream starts", async () => {
  const { fetch, calls } = scripted([
    { text: "retry: 5\nid: news=5&alerts=\n\nid: news=5&alerts=1\ndata: x\n\nid: news=6&alerts=1\n\n" },
    { text: "", open: true },
  ]);
  const source = new WsgisseEventSource("http://h.test/events", { ...fast, fetch, channels: ["news", "alerts"] });
  try {
    const channels = [];
    source.onmessage = (event) => channels.push(event.channel);
    await until(() => calls.length === 2, "the reconnection");
    assert.deepEqual(channels, ["alerts"]);
    assert.equal(calls[1].url.searchParams.get("lastEventId"), "news=6&alerts=1");
    assert.deepEqual(source.positions, { news: "6", alerts: "1" });
  } finally {
    source.close();
  }
});
