// The pure parts of wsgisse.js, under `node --test` (make test runs them: `make jstest`).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  EventStreamParser,
  SeenIds,
  WsgisseEventSource,
  backoffDelay,
  buildUrl,
  channelOf,
  decodePosition,
  endReason,
  parseRetry,
  shareKey,
} from "../../wsgisse/static/wsgisse.js";

const fixed = (value) => () => value;

test("after an open stream ends, the delay is the server's retry as told", () => {
  assert.equal(backoffDelay(0, { retry: 1234, random: fixed(0.99) }), 1234);
  assert.equal(backoffDelay(0, { retry: 0 }), 0);
});

test("failures double the delay from the retry, with half of it jittered", () => {
  const low = (n) => backoffDelay(n, { retry: 1000, random: fixed(0) });
  const high = (n) => backoffDelay(n, { retry: 1000, random: fixed(1) });
  assert.deepEqual([1, 2, 3, 4].map(low), [500, 1000, 2000, 4000]);
  assert.deepEqual([1, 2, 3, 4].map(high), [1000, 2000, 4000, 8000]);
});

test("the backoff stops growing at max and never goes below min", () => {
  assert.equal(backoffDelay(40, { retry: 1000, max: 30000, random: fixed(1) }), 30000);
  assert.equal(backoffDelay(1, { retry: 0, min: 250, random: fixed(1) }), 250);
  const spread = new Set(Array.from({ length: 50 }, () => backoffDelay(3, { retry: 1000 })));
  assert.ok(spread.size > 10, "the jitter spreads clients out");
  for (const delay of spread) assert.ok(delay >= 2000 && delay <= 4000);
});

test("retry takes ASCII digits only", () => {
  assert.equal(parseRetry("2500"), 2500);
  assert.equal(parseRetry("0"), 0);
  for (const bad of ["", " 1", "1.5", "-1", "1e3", "１"]) assert.equal(parseRetry(bad), null);
});

test("the URL carries the channels once each and the id to resume from", () => {
  const url = buildUrl("/events?channel=news", {
    channels: ["news", "alerts", "a b"],
    lastEventId: "news=1&alerts=",
    base: "http://example.test/page",
  });
  const parsed = new URL(url);
  assert.equal(parsed.pathname, "/events");
  assert.deepEqual(parsed.searchParams.getAll("channel"), ["news", "alerts", "a b"]);
  assert.equal(parsed.searchParams.get("lastEventId"), "news=1&alerts=");
});

test("a new id replaces the old one, and an empty id sends none", () => {
  const once = buildUrl("http://h.test/e?lastEventId=old", { lastEventId: "new" });
  assert.deepEqual(new URL(once).searchParams.getAll("lastEventId"), ["new"]);
  const none = buildUrl("http://h.test/e?lastEventId=old", { lastEventId: "" });
  assert.equal(new URL(none).searchParams.has("lastEventId"), false);
});

test("a composite id decodes to each channel's position, as the server encodes it", () => {
  // Python: urlencode({"news": "18c-5", "alerts": "", "a b": "x&y"})
  assert.deepEqual(decodePosition("news=18c-5&alerts=&a+b=x%26y"), {
    news: "18c-5",
    alerts: "",
    "a b": "x&y",
  });
  for (const plain of ["", "18c0a-5", "=x", "a=1&b", "a=%zz"]) {
    assert.equal(decodePosition(plain), null, plain);
  }
});

test("the channel of a multiplexed event is the one whose position moved", () => {
  assert.equal(channelOf("news=1&alerts=", "news=1&alerts=7"), "alerts");
  assert.equal(channelOf("", "news=1&alerts="), "news");
  assert.equal(channelOf("", "news=1&alerts=2"), null);
  assert.equal(channelOf("", "news=1"), "news");
  assert.equal(channelOf("news=1", "plain-id"), null);
});

test("seen ids tell repeats apart and which id came first, within a bound", () => {
  const seen = new SeenIds(3);
  assert.equal(seen.remember("a"), true);
  assert.equal(seen.remember("b"), true);
  assert.equal(seen.remember("a"), false);
  seen.remember("c");
  assert.equal(seen.earliest(["c", "b", "never"]), "b");
  assert.equal(seen.earliest(["never"]), null);
  seen.remember("d"); // "a" falls out.
  assert.equal(seen.has("a"), false);
  assert.equal(seen.remember("a"), true);
});

function parse(chunks, lastEventId = "") {
  const events = [];
  const retries = [];
  const parser = new EventStreamParser({
    lastEventId,
    onEvent: (event) => events.push(event),
    onRetry: (ms) => retries.push(ms),
  });
  for (const chunk of chunks) parser.feed(chunk);
  return { events, retries, parser };
}

test("the parser follows the standard: fields, data lines, default type", () => {
  const { events, retries } = parse([
    ": comment\nretry: 500\nretry: x\nevent: tick\ndata: one\ndata:two\nid: 7\n\n",
    "data\n\ndata: last\n",
  ]);
  assert.deepEqual(retries, [500]);
  assert.deepEqual(events, [
    { type: "tick", data: "one\ntwo", lastEventId: "7", hasId: true },
    { type: "message", data: "", lastEventId: "7", hasId: false },
  ]);
});

test("lines end at CR, LF and CRLF, even a CRLF split across chunks", () => {
  const whole = parse(["data: a\r\ndata: b\rid: 1\n\r\n"]).events;
  const split = parse(["data: a\r", "\ndata: b\r", "id: 1\n\r", "\n"]).events;
  const bytes = parse([..."data: a\r\ndata: b\rid: 1\n\r\n"]).events;
  const expected = [{ type: "message", data: "a\nb", lastEventId: "1", hasId: true }];
  assert.deepEqual(whole, expected);
  assert.deepEqual(split, expected);
  assert.deepEqual(bytes, expected);
});

test("an id with NUL is ignored, an empty id resets, an id alone moves lastEventId", () => {
  const ids = [];
  const events = [];
  const parser = new EventStreamParser({ lastEventId: "0", onEvent: (e) => events.push(e), onId: (id) => ids.push(id) });
  for (const chunk of ["id: 1\0\ndata: a\n\n", "id\ndata: b\n\n", "id: 9\n\n", "\n"]) parser.feed(chunk);
  assert.deepEqual(ids, ["9"]);
  assert.deepEqual(
    events.map((e) => [e.lastEventId, e.hasId]),
    [
      ["0", false],
      ["", true],
    ],
  );
  assert.equal(parser.lastEventId, "9");
});

test("the reason of a wsgisse-end event, and the key tabs share by", () => {
  assert.equal(endReason('{"reason":"revoked"}'), "revoked");
  assert.equal(endReason("not json"), "unknown");
  assert.notEqual(shareKey("http://h/e", true), shareKey("http://h/e", false));
});

test("the object looks like an EventSource before it connects", () => {
  const calls = [];
  const never = (url, init) => {
    calls.push(url);
    return new Promise((_, reject) => init.signal.addEventListener("abort", () => reject(new Error("aborted"))));
  };
  const source = new WsgisseEventSource("http://h.test/events", {
    channels: ["a", "b"],
    lastEventId: "a=1&b=2",
    withCredentials: true,
    fetch: never,
  });
  assert.equal(source.readyState, 0);
  assert.equal(source.url, "http://h.test/events?channel=a&channel=b");
  assert.equal(source.withCredentials, true);
  assert.deepEqual(source.positions, { a: "1", b: "2" });
  assert.equal(new URL(calls[0]).searchParams.get("lastEventId"), "a=1&b=2");
  source.close();
  assert.equal(source.readyState, 2);
  assert.equal(source.closedReason, "closed");
});
