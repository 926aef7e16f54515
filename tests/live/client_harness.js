// What the browser tests of wsgisse.js run in the page (tests/test_client_browser.py drives
// it from Playwright; the Firefox page runs runAll() and posts the results). Scenarios
// return what they saw; the Python tests make the assertions.
import { WsgisseEventSource } from "/events/wsgisse.js";

const recs = (window.rec = {});

export function open(name, url, options = {}) {
  const rec = { received: [], ids: [], channels: [], errors: 0, opens: 0, ends: [], lost: [] };
  rec.source = new WsgisseEventSource(url, {
    ...options,
    onEnd: (reason) => rec.ends.push(reason),
    onHistoryLost: (info) => rec.lost.push(info),
  });
  rec.source.onopen = () => (rec.opens += 1);
  rec.source.onerror = () => (rec.errors += 1);
  rec.source.onmessage = (event) => {
    rec.received.push(event.data);
    rec.ids.push(event.lastEventId);
    rec.channels.push(event.channel);
  };
  recs[name] = rec;
  return rec;
}

export function snapshot(name) {
  const { source, ...rest } = recs[name];
  const hub = source._hub;
  return {
    ...rest,
    readyState: source.readyState,
    closedReason: source.closedReason,
    sharing: source.sharing,
    leading: Boolean(hub && hub.leading),
    lastEventId: source.lastEventId,
    positions: source.positions,
  };
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Poll `predicate` (sync or async) until it is truthy; bounded.
export async function until(predicate, what, timeout = 15000) {
  const deadline = Date.now() + timeout;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

export async function post(path) {
  const response = await fetch(path, { method: "POST" });
  return response.json();
}

export async function stats() {
  return (await fetch("/stats", { cache: "no-store" })).json();
}

export function closeAll() {
  for (const rec of Object.values(recs)) rec.source.close();
}

// A proxy answers 502 for a while, then the backend is back: nothing is lost. A native
// EventSource beside it is the control: it stays CLOSED after the 502.
export async function badGateway() {
  const rec = open("flaky", "/flaky/events?channel=news&user=flaky");
  const native = new EventSource("/flaky/events?channel=news&user=native");
  await until(() => rec.opens === 1 && native.readyState === 1, "both open");
  await post("/publish?data=before");
  await until(() => rec.received.includes("before"), "before");
  const down = (await stats()).bad_gateway;
  await post("/flaky/down");
  await post("/publish?data=in-flight");
  await until(async () => (await stats()).bad_gateway >= down + 3, "three 502s");
  await post("/publish?data=while-down");
  await until(() => native.readyState === 2, "the native EventSource closed");
  await post("/flaky/up");
  await until(() => rec.received.includes("while-down"), "the replay");
  await post("/publish?data=after");
  await until(() => rec.received.includes("after"), "after");
  const result = { ...snapshot("flaky"), nativeReadyState: native.readyState };
  native.close();
  rec.source.close();
  return result;
}

// Refused for capacity: it comes back as told, again and again, until a slot frees.
export async function capacity() {
  const first = open("first", "/capped/events?channel=news&user=first");
  await until(() => first.opens === 1, "the first open");
  const rec = open("capped", "/capped/events?channel=news&user=capped");
  await until(() => rec.ends.length >= 2, "two refusals");
  first.source.close();
  await until(() => rec.source.readyState === 1 && rec.opens > rec.ends.length, "a slot");
  await post("/publish?data=c1");
  await until(() => rec.received.includes("c1"), "c1");
  rec.source.close();
  return snapshot("capped");
}

// Revoked: the source stops, and never asks again.
export async function revoked() {
  const rec = open("revoked", "/events?channel=news&user=alice");
  await until(() => rec.opens === 1, "open");
  await post("/publish?data=r1");
  await until(() => rec.received.includes("r1"), "r1");
  await post("/revoke?user=alice");
  await until(() => rec.source.readyState === 2, "closed");
  const atClose = (await stats()).requests.alice;
  await sleep(1500); // Several retry periods (200 ms): it must not come back.
  return { ...snapshot("revoked"), requestsAtClose: atClose, requestsLater: (await stats()).requests.alice };
}

// 204 No Content: stop for good.
export async function noContent() {
  const rec = open("gone", "/events?channel=news&user=gone");
  await until(() => rec.source.readyState === 2, "closed");
  await sleep(1500);
  return { ...snapshot("gone"), requests: (await stats()).requests.gone };
}

// An id the server cannot resume: the history-lost callback runs, and the stream goes on.
export async function historyLost() {
  const rec = open("lost", "/events?channel=news&user=lost", { lastEventId: "no-such-id" });
  await until(() => rec.lost.length === 1 && rec.opens === 1, "history lost");
  await post("/publish?data=h1");
  await until(() => rec.received.includes("h1"), "h1");
  rec.source.close();
  return snapshot("lost");
}

// Two channels over one stream, with one composite id.
export async function multiplexed() {
  const rec = open("multi", "/events?user=multi", { channels: ["news", "alerts"] });
  await until(() => rec.opens === 1, "open");
  for (const [channel, data] of [["alerts", "m1"], ["news", "m2"], ["alerts", "m3"]]) {
    await post(`/publish?channel=${channel}&data=${data}`);
    await until(() => rec.received.includes(data), data);
  }
  rec.source.close();
  return snapshot("multi");
}

// The shared worker cannot start (its script is missing): the tab shares by Web Locks.
export async function workerFallback() {
  const rec = open("fallback", "/events?channel=news&user=fallback", { share: true, workerUrl: "/no-such-worker.js" });
  await until(() => rec.opens === 1, "open");
  await post("/publish?data=f1");
  await until(() => rec.received.includes("f1"), "f1");
  rec.source.close();
  return snapshot("fallback");
}

// Same-origin iframes stand in for tabs where no driver opens tabs (Firefox).
async function frames(count) {
  const made = [];
  for (let n = 0; n < count; n += 1) {
    const frame = document.createElement("iframe");
    frame.src = "/frame";
    document.body.append(frame);
    made.push(frame);
  }
  await until(() => made.every((f) => f.contentWindow && f.contentWindow.harnessReady), "frames");
  return made;
}

const tabSnapshot = (frame) => frame.contentWindow.harness.snapshot("tab");

export async function framesShared(count = 12, share = true) {
  const made = await frames(count);
  for (const frame of made) frame.contentWindow.harness.open("tab", "/events?channel=news&user=tabs", { share });
  await until(() => made.every((f) => tabSnapshot(f).readyState === 1), "every tab open");
  await post("/publish?data=s&count=10");
  await until(() => made.every((f) => tabSnapshot(f).received.length >= 10), "every tab got 10");
  // Streams closed by earlier scenarios are noticed at the server's next heartbeat.
  await until(async () => (await stats()).connected === 1, "one stream on the server");
  await sleep(300); // Anything repeated would arrive now.
  const { connected, requests } = await stats();
  const tabs = made.map(tabSnapshot);
  for (const frame of made) frame.remove();
  return { connected, requests: requests.tabs, tabs };
}

export async function framesHandover(count = 4) {
  const made = await frames(count);
  for (const frame of made) frame.contentWindow.harness.open("tab", "/events?channel=news&user=lock", { share: "lock" });
  await until(() => made.every((f) => tabSnapshot(f).readyState === 1), "every tab open");
  await post("/publish?data=a&count=3");
  await until(() => made.every((f) => tabSnapshot(f).received.length >= 3), "every tab got 3");
  const leader = made.find((f) => tabSnapshot(f).leading);
  // Publish all the while the leader goes: one event every 10 ms.
  const publishing = (async () => {
    for (let n = 0; n < 20; n += 1) {
      await post(`/publish?data=b${n}`);
      await sleep(10);
    }
  })();
  await sleep(50);
  leader.remove();
  await publishing;
  const rest = made.filter((f) => f !== leader);
  await until(() => rest.every((f) => tabSnapshot(f).received.length >= 23), "the rest got 23");
  await until(() => rest.some((f) => tabSnapshot(f).leading), "a new leader");
  await post("/publish?data=c");
  await until(() => rest.every((f) => tabSnapshot(f).received.length >= 24), "the rest got 24");
  await sleep(300);
  await until(async () => (await stats()).connected === 1, "one stream on the server");
  const connected = (await stats()).connected;
  const tabs = rest.map(tabSnapshot);
  for (const frame of rest) frame.remove();
  return { connected, tabs, leaders: tabs.filter((t) => t.leading).length };
}

export async function runAll() {
  const report = {};
  const scenarios = { badGateway, capacity, revoked, noContent, historyLost, multiplexed, workerFallback, framesShared, framesHandover };
  for (const [name, scenario] of Object.entries(scenarios)) {
    try {
      report[name] = await scenario();
    } catch (error) {
      report[name] = { error: String(error && error.stack ? error.stack : error) };
    }
  }
  report.userAgent = navigator.userAgent;
  await fetch("/report", { method: "POST", body: JSON.stringify(report) });
}
