// Generated from wsgisse.js by `make js`: edit wsgisse.js instead.
(function () {
"use strict";
// wsgisse.js: the browser client of wsgisse (https://pypi.org/project/wsgisse/).
//
// An EventSource that loses nothing: it reconnects after any failure (a proxy's 502, a
// 401, a dropped network) with jittered exponential backoff and ?lastEventId=, so the
// server replays what was missed; it honours the server's `retry`, stops for good on
// 204 and on `wsgisse-end` with reason "revoked", follows several channels over one
// stream, and, opt-in, shares one connection among all the tabs of an origin (a
// SharedWorker, or leader election with Web Locks and BroadcastChannel).
//
// No dependencies. This file is an ES module; wsgisse.global.js is the same code as a
// classic script (window.wsgisse), generated from it. MIT licence, versioned with the
// Python package.

const VERSION = "0.1.0";
const HISTORY_LOST_EVENT = "wsgisse-history-lost";
const END_EVENT = "wsgisse-end";
const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 2;

// Where this script was loaded from (a shared worker runs this same file) and how.
// The classic build replaces the two lines below.
const SCRIPT_URL = typeof document !== "undefined" && document.currentScript
  ? document.currentScript.src
  : String(globalThis.location && globalThis.location.href);
const SCRIPT_TYPE = "classic";

// ---------------------------------------------------------------------------------------
// The pure parts: no timers, no network, no DOM. Unit-tested with `node --test`.

/**
 * The delay before reconnection attempt number `failures` (1 for the first failure in a
 * row), in ms. After a stream that was open and then ended (`failures` 0) it is the
 * server's `retry` as told: wsgisse already jitters the retry of a stream it ends on
 * purpose. After failures it doubles from there up to `max`, with "equal jitter" (half
 * the delay fixed, half random) so that many clients refused at once spread out, and
 * never less than `min`, so that a server that says `retry: 0` and then fails is not
 * hammered.
 */
function backoffDelay(failures, { retry = 3000, min = 250, max = 30000, random = Math.random } = {}) {
  if (failures <= 0) return Math.max(0, retry);
  const ceiling = Math.min(max, Math.max(retry, min) * 2 ** Math.min(failures - 1, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** The value of a `retry` field as the HTML standard reads it: ASCII digits only. */
function parseRetry(value) {
  return /^[0-9]+$/.test(value) ? Number(value) : null;
}

/**
 * The URL of a stream request: `url` with `?channel=` for each channel not already
 * there and `?lastEventId=` (which wsgisse reads like the Last-Event-ID header, and
 * which needs no CORS preflight) when there is an id to resume from.
 */
function buildUrl(url, { channels = [], lastEventId = "", channelParameter = "channel", base } = {}) {
  const target = new URL(url, base);
  const present = new Set(target.searchParams.getAll(channelParameter));
  for (const channel of channels) {
    if (!present.has(channel)) target.searchParams.append(channelParameter, channel);
    present.add(channel);
  }
  target.searchParams.delete("lastEventId");
  if (lastEventId) target.searchParams.append("lastEventId", lastEventId);
  return target.href;
}

/**
 * The positions in a multiplexed stream's composite id (`news=<id>&alerts=<id>`, form
 * encoded), as an object; `null` when `id` is not a composite id (every pair needs `=`,
 * as in wsgisse's own `decode_position`).
 */
function decodePosition(id) {
  if (!id) return null;
  const positions = {};
  for (const pair of id.split("&")) {
    const cut = pair.indexOf("=");
    if (cut < 1) return null;
    const decode = (text) => decodeURIComponent(text.replace(/\+/g, " "));
    try {
      positions[decode(pair.slice(0, cut))] = decode(pair.slice(cut + 1));
    } catch {
      return null;
    }
  }
  return positions;
}

/**
 * The channel an event of a multiplexed stream came from: the one whose position moved
 * between the previous composite id and this one, a channel absent before being at ""
 * (no event yet). `null` when none or several moved: the first event of a fresh stream
 * whose channels already held events cannot be told apart.
 */
function channelOf(previousId, id) {
  const before = decodePosition(previousId) || {};
  const after = decodePosition(id);
  if (after === null) return null;
  const moved = Object.keys(after).filter((name) => after[name] !== (before[name] ?? ""));
  return moved.length === 1 ? moved[0] : null;
}

/**
 * The ids a client has seen, in order, bounded: it tells a repeat from a new event (tabs
 * de-duplicate what a new leader replays) and which of several ids came first (a new
 * leader resumes from the oldest id any tab last saw).
 */
class SeenIds {
  constructor(limit = 1024) {
    this.limit = limit;
    this._order = new Map();
    this._next = 0;
  }

  /** Record `id`; `false` when it was already seen (a repeat to drop). */
  remember(id) {
    if (this._order.has(id)) return false;
    this._order.set(id, this._next++);
    if (this._order.size > this.limit) this._order.delete(this._order.keys().next().value);
    return true;
  }

  has(id) {
    return this._order.has(id);
  }

  /**
   * The earliest of `ids` in the order seen, among those this client has seen; ids it
   * never saw are newer than all it has (or older than it remembers) and are skipped.
   * `null` when it saw none of them.
   */
  earliest(ids) {
    let best = null;
    let bestIndex = Infinity;
    for (const id of ids) {
      const index = this._order.get(id);
      if (index !== undefined && index < bestIndex) {
        best = id;
        bestIndex = index;
      }
    }
    return best;
  }
}

/**
 * An event-stream parser following the HTML standard (§9.2.6) step by step: fed text as
 * it arrives (decoded by a streaming TextDecoder, which also drops the BOM), it calls
 * `onEvent({type, data, lastEventId, hasId})` for each dispatched event and
 * `onRetry(ms)` for each valid retry field, and `onId(id)` when a block with an id but no
 * data moves the last event ID without an event. Lines end at CR, LF or CRLF, even when a
 * CRLF is split across chunks; an unterminated last event is never dispatched.
 */
class EventStreamParser {
  constructor({ onEvent, onRetry = () => {}, onId = () => {}, lastEventId = "" }) {
    this.onEvent = onEvent;
    this.onRetry = onRetry;
    this.onId = onId;
    this.lastEventId = lastEventId;
    this._buffer = "";
    this._skipLF = false;
    this._data = [];
    this._type = "";
    this._hasId = false;
  }

  feed(text) {
    let start = 0;
    if (this._skipLF && text.startsWith("\n")) start = 1;
    this._skipLF = false;
    const buffer = this._buffer + text.slice(start);
    const ending = /\r\n|\r|\n/g;
    let from = 0;
    let match;
    while ((match = ending.exec(buffer)) !== null) {
      if (match[0] === "\r" && match.index === buffer.length - 1) {
        // A CR at the end of the chunk: the LF of a CRLF may come with the next.
        this._skipLF = true;
      }
      this._line(buffer.slice(from, match.index));
      from = ending.lastIndex;
    }
    this._buffer = buffer.slice(from);
  }

  _line(line) {
    if (line === "") return this._dispatch();
    if (line.startsWith(":")) return undefined;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this._data.push(value);
    else if (field === "event") this._type = value;
    else if (field === "id" && !value.includes("\0")) {
      this.lastEventId = value;
      this._hasId = true;
    } else if (field === "retry") {
      const retry = parseRetry(value);
      if (retry !== null) this.onRetry(retry);
    }
    return undefined;
  }

  _dispatch() {
    const hasId = this._hasId;
    const { _data: data, _type: type } = this;
    this._data = [];
    this._type = "";
    this._hasId = false;
    if (data.length === 0) {
      // No event, but the last event ID moved all the same (§9.2.6 "dispatch the event",
      // step 1): a reconnection resumes from it.
      if (hasId) this.onId(this.lastEventId);
      return;
    }
    this.onEvent({ type: type || "message", data: data.join("\n"), lastEventId: this.lastEventId, hasId });
  }
}

/** What a `wsgisse-end` event's data says: its reason ("shutdown", "revoked", ...). */
function endReason(data) {
  try {
    const parsed = JSON.parse(data);
    return parsed && typeof parsed.reason === "string" ? parsed.reason : "unknown";
  } catch {
    return "unknown";
  }
}

/** The key tabs share a connection by: the stream's URL and credentials mode. */
function shareKey(url, withCredentials) {
  return `wsgisse ${withCredentials ? "credentials" : "anonymous"} ${url}`;
}

// ---------------------------------------------------------------------------------------
// The connection: one fetch() stream, reconnected until closed. Its owner is a page, a
// shared worker or the leader tab; it reports to `sink` (event, state).

class Connection {
  constructor(url, options, sink) {
    this.url = url;
    this.options = options;
    this.sink = sink;
    this.lastEventId = options.lastEventId || "";
    this.retry = options.retry ?? 3000;
    this.readyState = CONNECTING;
    this._closed = false;
    this._abort = null;
    this._timer = null;
    this._wake = null;
    this._run();
  }

  close(reason = "closed") {
    if (this._closed) return;
    this._closed = true;
    this.readyState = CLOSED;
    if (this._abort) this._abort.abort();
    if (this._wake) this._wake();
    this.sink.state(CLOSED, reason);
  }

  async _run() {
    const fetchImpl = this.options.fetch || globalThis.fetch.bind(globalThis);
    let failures = 0;
    while (!this._closed) {
      const abort = (this._abort = new AbortController());
      let opened = false;
      try {
        const response = await fetchImpl(buildUrl(this.url, { lastEventId: this.lastEventId }), {
          headers: { Accept: "text/event-stream" },
          credentials: this.options.withCredentials ? "include" : "same-origin",
          cache: "no-store",
          signal: abort.signal,
        });
        if (response.status === 204) {
          this.close("no-content");
          return;
        }
        const type = response.headers.get("Content-Type") || "";
        if (response.status !== 200 || !/^text\/event-stream\b/i.test(type)) {
          if (response.body) response.body.cancel().catch(() => {});
          throw new Error(`HTTP ${response.status}`);
        }
        opened = true;
        failures = 0;
        this.readyState = OPEN;
        this.sink.state(OPEN);
        await this._read(response.body);
      } catch {
        // A network error, a refusal or an abort: the loop below decides.
      }
      if (this._closed) return;
      if (!opened) failures += 1;
      this.readyState = CONNECTING;
      this.sink.state(CONNECTING);
      await this._sleep(backoffDelay(failures, { ...this.options.backoff, retry: this.retry }));
    }
  }

  async _read(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    const parser = new EventStreamParser({
      lastEventId: this.lastEventId,
      onRetry: (ms) => {
        this.retry = ms;
      },
      onId: (id) => {
        if (this._closed) return;
        this.lastEventId = id;
        this.sink.event({ type: null, data: "", lastEventId: id, hasId: true, idOnly: true });
      },
      onEvent: (event) => {
        if (this._closed) return;
        this.lastEventId = event.lastEventId;
        this.sink.event(event);
        if (event.type === END_EVENT && endReason(event.data) === "revoked") this.close("revoked");
      },
    });
    // A connection that died without a FIN (a sleeping laptop, a NAT that forgot it)
    // never ends by itself: wsgisse writes a heartbeat comment every 15 s by default, so
    // silence for `idleTimeout` (45 s) means the stream is gone. 0 disables it.
    const idle = this.options.idleTimeout ?? 45000;
    let watchdog = null;
    const arm = () => {
      if (!idle) return;
      clearTimeout(watchdog);
      watchdog = setTimeout(() => reader.cancel().catch(() => {}), idle);
    };
    try {
      arm();
      for (;;) {
        const { value, done } = await reader.read();
        if (done || this._closed) break;
        arm();
        parser.feed(decoder.decode(value, { stream: true }));
      }
    } finally {
      clearTimeout(watchdog);
      reader.cancel().catch(() => {});
    }
  }

  // Wait `ms`, or less: close() ends the wait, and so does the network coming back.
  _sleep(ms) {
    return new Promise((resolve) => {
      let timer = null;
      const done = () => {
        clearTimeout(timer);
        if (globalThis.removeEventListener) globalThis.removeEventListener("online", done);
        this._wake = null;
        resolve();
      };
      this._wake = done;
      timer = setTimeout(done, ms);
      if (globalThis.addEventListener) globalThis.addEventListener("online", done);
    });
  }
}

// ---------------------------------------------------------------------------------------
// The EventSource-compatible object.

const HANDLERS = ["open", "message", "error"];

/**
 * An EventSource that reconnects, replays and optionally shares its connection.
 *
 * Options: `withCredentials`; `channels` (names, multiplexed over one stream);
 * `lastEventId` (resume from it); `share` (`true`: one connection for every tab of the
 * origin; `"worker"` or `"lock"` to choose how); `onHistoryLost(info, event)`;
 * `onEnd(reason, event)`; `backoff` (`{min, max}` ms); `idleTimeout` (ms of silence
 * before the stream counts as dead); `workerUrl` (where this script is served, for a
 * shared worker, when it is bundled); `handoverWait`; `fetch`.
 */
class WsgisseEventSource extends EventTarget {
  constructor(url, options = {}) {
    super();
    const base = globalThis.location ? globalThis.location.href : undefined;
    this.url = buildUrl(url, { channels: options.channels || [], base });
    this.withCredentials = Boolean(options.withCredentials);
    this.readyState = CONNECTING;
    this.lastEventId = options.lastEventId || "";
    this.closedReason = null;
    this.sharing = "none";
    this.onopen = this.onmessage = this.onerror = null;
    for (const type of HANDLERS) {
      this.addEventListener(type, (event) => {
        const handler = this[`on${type}`];
        if (typeof handler === "function") handler.call(this, event);
      });
    }
    this._options = options;
    this._seen = new SeenIds();
    this._previousId = this.lastEventId;
    this._hub = null;
    const wire = {
      url: this.url,
      withCredentials: this.withCredentials,
      lastEventId: this.lastEventId,
      backoff: options.backoff,
      idleTimeout: options.idleTimeout,
    };
    this._wire = wire;
    this._startHub(pickSharing(options.share));
  }

  _startHub(mode) {
    const Hub = { worker: WorkerHub, lock: LockHub, none: LocalHub }[mode];
    try {
      this._hub = new Hub(this, { ...this._wire, lastEventId: this.lastEventId }, this._options);
      this.sharing = mode;
    } catch (error) {
      if (mode === "none") throw error;
      this._startHub(mode === "worker" && canLock() ? "lock" : "none");
    }
  }

  // The shared worker did not start (a content security policy without worker-src, a
  // bundled copy without `workerUrl`): share by leader election instead.
  _workerFailed(hub) {
    if (this._hub !== hub) return;
    this._hub = null;
    hub.close();
    this._startHub(canLock() ? "lock" : "none");
  }

  static CONNECTING = CONNECTING;
  static OPEN = OPEN;
  static CLOSED = CLOSED;

  /** The positions of a multiplexed stream in each channel (`null` for one channel). */
  get positions() {
    return decodePosition(this.lastEventId);
  }

  close() {
    if (this.readyState === CLOSED && this._hub === null) return;
    this.readyState = CLOSED;
    this.closedReason = this.closedReason || "closed";
    const hub = this._hub;
    this._hub = null;
    if (hub) hub.close();
  }

  // Called by the hub with each event the connection parsed.
  _deliver(event) {
    if (this._hub === null) return;
    if (event.idOnly) {
      // A position without an event (e.g. where a multiplexed stream starts).
      this._previousId = this.lastEventId = event.lastEventId;
      return;
    }
    if (event.hasId && !this._seen.remember(event.lastEventId)) return; // A repeat.
    const channels = this._options.channels || [];
    const channel = channels.length === 1 ? channels[0] : channelOf(this._previousId, event.lastEventId);
    if (event.hasId) this._previousId = event.lastEventId;
    this.lastEventId = event.lastEventId;
    if (event.type === END_EVENT && endReason(event.data) === "revoked") {
      // Stopped already for the listeners and onEnd; the connection closes right after.
      this.readyState = CLOSED;
      this.closedReason = "revoked";
    }
    const message = new MessageEvent(event.type, {
      data: event.data,
      lastEventId: event.lastEventId,
      origin: new URL(this.url).origin,
    });
    message.channel = channel;
    this.dispatchEvent(message);
    if (event.type === HISTORY_LOST_EVENT && this._options.onHistoryLost) {
      let info = null;
      try {
        info = JSON.parse(event.data);
      } catch {
        info = { data: event.data };
      }
      this._options.onHistoryLost.call(this, info, message);
    } else if (event.type === END_EVENT && this._options.onEnd) {
      this._options.onEnd.call(this, endReason(event.data), message);
    }
  }

  // Called by the hub when the connection's state changes.
  _state(readyState, reason) {
    if (this._hub === null) return;
    const previous = this.readyState;
    this.readyState = readyState;
    if (readyState === OPEN && previous !== OPEN) this.dispatchEvent(new Event("open"));
    // As a native EventSource: an error event for each failure while it reconnects.
    else if (readyState === CONNECTING) this.dispatchEvent(new Event("error"));
    else if (readyState === CLOSED) {
      this.closedReason = reason || "closed";
      const hub = this._hub;
      this._hub = null;
      hub.close();
      this.dispatchEvent(new Event("error"));
    }
  }
}

function canLock() {
  return typeof BroadcastChannel === "function" && Boolean(globalThis.navigator && navigator.locks);
}

function pickSharing(share) {
  if (!share) return "none";
  const canWorker = typeof SharedWorker === "function";
  if (share === "lock") return canLock() ? "lock" : "none";
  return canWorker ? "worker" : canLock() ? "lock" : "none";
}

// A connection of the page's own (no sharing).
class LocalHub {
  constructor(source, wire, options) {
    this.connection = new Connection(wire.url, { ...wire, fetch: options.fetch }, {
      event: (event) => source._deliver(event),
      state: (state, reason) => source._state(state, reason),
    });
  }

  close() {
    this.connection.close();
  }
}

// ---------------------------------------------------------------------------------------
// Sharing through a SharedWorker: the worker (this same script) owns the connection and
// forwards everything to every tab's port.

class WorkerHub {
  constructor(source, wire, options) {
    const key = shareKey(wire.url, wire.withCredentials);
    this.worker = new SharedWorker(options.workerUrl || SCRIPT_URL, { name: key, type: SCRIPT_TYPE });
    this.port = this.worker.port;
    this.heard = false;
    this.worker.addEventListener("error", () => {
      if (!this.heard) source._workerFailed(this);
    });
    this.port.onmessage = ({ data }) => {
      this.heard = true;
      if (data.kind === "event") source._deliver(data.event);
      else if (data.kind === "state") source._state(data.readyState, data.reason);
    };
    this.port.start();
    this._join = (event) => {
      // Back from the back/forward cache: join again (the stream may have moved on).
      if (!event || event.persisted) this.port.postMessage({ kind: "join", wire: { ...wire, lastEventId: source.lastEventId } });
    };
    this._leave = () => this.port.postMessage({ kind: "leave" });
    this._join();
    globalThis.addEventListener("pagehide", this._leave);
    globalThis.addEventListener("pageshow", this._join);
  }

  close() {
    globalThis.removeEventListener("pagehide", this._leave);
    globalThis.removeEventListener("pageshow", this._join);
    this._leave();
    this.port.close();
  }
}

function runSharedWorker(scope) {
  const ports = new Set();
  let connection = null;
  let lastState = { kind: "state", readyState: CONNECTING };
  const send = (message) => {
    for (const port of ports) port.postMessage(message);
  };
  scope.addEventListener("connect", (connect) => {
    const port = connect.ports[0];
    port.onmessage = ({ data }) => {
      if (data.kind === "join") {
        ports.add(port);
        if (lastState.readyState === OPEN) port.postMessage(lastState);
        if (connection === null || connection.readyState === CLOSED) {
          // A tab that comes after a stop for good (revoked, 204) tries afresh: its user
          // may have signed in again.
          lastState = { kind: "state", readyState: CONNECTING };
          connection = new Connection(data.wire.url, { ...data.wire, lastEventId: connection ? connection.lastEventId : data.wire.lastEventId }, {
            event: (event) => send({ kind: "event", event }),
            state: (readyState, reason) => {
              lastState = { kind: "state", readyState, reason };
              send(lastState);
              if (readyState === CLOSED) ports.clear();
            },
          });
        }
      } else if (data.kind === "leave") {
        ports.delete(port);
        if (ports.size === 0 && connection) {
          // No tab left: close without telling anyone; a tab that comes later reopens.
          const last = connection;
          last.sink = { event() {}, state() {} };
          last.close();
          lastState = { kind: "state", readyState: CONNECTING };
        }
      }
    };
    port.start();
  });
}

if (typeof SharedWorkerGlobalScope === "function" && globalThis instanceof SharedWorkerGlobalScope) {
  runSharedWorker(globalThis);
}

// ---------------------------------------------------------------------------------------
// Sharing by leader election: every tab asks for one Web Lock; the tab holding it owns
// the connection and posts what it receives on a BroadcastChannel. When the leader tab
// closes, the browser hands the lock to another tab, which asks every tab for the last
// id it saw and resumes from the oldest of them: nothing is lost, and tabs drop the
// repeats by id.

class LockHub {
  constructor(source, wire, options) {
    this.source = source;
    this.wire = wire;
    this.options = options;
    this.key = shareKey(wire.url, wire.withCredentials);
    this.channel = new BroadcastChannel(this.key);
    this.connection = null;
    this.leading = false;
    this.released = new AbortController();
    this.replies = null;
    this.channel.onmessage = ({ data }) => this._message(data);
    this._pagehide = () => {
      if (this.leading) this.channel.postMessage({ kind: "state", readyState: CONNECTING });
    };
    globalThis.addEventListener("pagehide", this._pagehide);
    navigator.locks
      .request(this.key, { signal: this.released.signal }, () => this._lead())
      .catch(() => {}); // Aborted by close().
    // Learn the state of a leader already there.
    this.channel.postMessage({ kind: "hello" });
  }

  _message(data) {
    if (data.kind === "event") {
      // Even once leading: a late event of the last leader is new here or dropped by id.
      this.source._deliver(data.event);
    } else if (data.kind === "state") {
      // A leader's "stop for good" stands even if this tab was just handed the lock.
      if (!this.leading || data.readyState === CLOSED) this.source._state(data.readyState, data.reason);
    } else if (data.kind === "hello") {
      if (this.leading && this.connection) this.channel.postMessage({ kind: "state", readyState: this.connection.readyState });
    } else if (data.kind === "who") {
      this.channel.postMessage({ kind: "seen", lastEventId: this.source.lastEventId });
    } else if (data.kind === "seen" && this.replies) {
      this.replies.push(data.lastEventId);
      if (this.replies.length >= this.expected) this._collected();
    }
  }

  async _lead() {
    this.leading = true;
    const resume = await this._resumePoint();
    if (this.source._hub !== this) return;
    this.connection = new Connection(this.wire.url, { ...this.wire, lastEventId: resume, fetch: this.options.fetch }, {
      event: (event) => {
        this.channel.postMessage({ kind: "event", event });
        this.source._deliver(event);
      },
      state: (readyState, reason) => {
        if (readyState === CLOSED && reason === "closed") return; // This tab closed only.
        this.channel.postMessage({ kind: "state", readyState, reason });
        this.source._state(readyState, reason);
      },
    });
    // Hold the lock until this tab closes its source (or the tab goes away).
    await new Promise((resolve) => {
      this.release = resolve;
    });
  }

  // The oldest last id of every tab, so that the tab furthest behind misses nothing.
  async _resumePoint() {
    let expected = 0;
    try {
      const state = await navigator.locks.query();
      expected = (state.pending || []).filter((lock) => lock.name === this.key).length;
    } catch {
      expected = 0;
    }
    this.replies = [];
    this.expected = expected;
    const wait = this.options.handoverWait ?? 500;
    await new Promise((resolve) => {
      this._collected = resolve;
      if (expected === 0) resolve();
      else {
        this.channel.postMessage({ kind: "who" });
        setTimeout(resolve, wait);
      }
    });
    const ids = [this.source.lastEventId, ...this.replies].filter(Boolean);
    const replies = this.replies;
    this.replies = null;
    return this.source._seen.earliest(ids) || this.source.lastEventId || this.wire.lastEventId || replies.find(Boolean) || "";
  }

  close() {
    globalThis.removeEventListener("pagehide", this._pagehide);
    if (this.leading) this.channel.postMessage({ kind: "state", readyState: CONNECTING });
    this.released.abort();
    if (this.connection) this.connection.close();
    if (this.release) this.release();
    this.channel.close();
  }
}


globalThis.wsgisse = Object.freeze({ VERSION, HISTORY_LOST_EVENT, END_EVENT, CONNECTING, OPEN, CLOSED, backoffDelay, parseRetry, buildUrl, decodePosition, channelOf, SeenIds, EventStreamParser, endReason, shareKey, WsgisseEventSource });
})();
