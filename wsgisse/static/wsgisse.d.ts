// Type declarations of wsgisse.js (the ES module; wsgisse.global.js defines the same
// names on `window.wsgisse`).

export declare const VERSION: string;
export declare const HISTORY_LOST_EVENT: "wsgisse-history-lost";
export declare const END_EVENT: "wsgisse-end";
export declare const CONNECTING: 0;
export declare const OPEN: 1;
export declare const CLOSED: 2;

/** Why a source stopped for good. */
export type ClosedReason = "closed" | "no-content" | "revoked";
/** The reasons a `wsgisse-end` event gives. */
export type EndReason = "shutdown" | "lifetime" | "capacity" | "revoked" | string;

export interface BackoffOptions {
  /** The least delay after a failure, in ms (default 250). */
  min?: number;
  /** The most, in ms (default 30000). */
  max?: number;
}

export interface HistoryLostInfo {
  lastEventId: string;
  oldestId: string | null;
}

export interface WsgisseEventSourceInit {
  withCredentials?: boolean;
  /** Channels to follow over one multiplexed stream (`?channel=a&channel=b`). */
  channels?: string[];
  /** Resume from this id (the server replays what came after it). */
  lastEventId?: string;
  /** Share one connection among every tab of the origin. */
  share?: boolean | "worker" | "lock";
  /** The server could not replay from the id: reload the page's state. */
  onHistoryLost?: (this: WsgisseEventSource, info: HistoryLostInfo, event: WsgisseMessageEvent) => void;
  /** The server ended the stream on purpose; on "revoked" the source has stopped. */
  onEnd?: (this: WsgisseEventSource, reason: EndReason, event: WsgisseMessageEvent) => void;
  backoff?: BackoffOptions;
  /** Where wsgisse.js is served, for the shared worker, when it is bundled. */
  workerUrl?: string | URL;
  /** Silence, in ms, after which the stream counts as dead and reconnects (45000; 0: never). */
  idleTimeout?: number;
  /** How long a new leader tab waits for the others' last ids, in ms (default 500). */
  handoverWait?: number;
  fetch?: typeof fetch;
}

export interface WsgisseMessageEvent extends MessageEvent<string> {
  /** The channel the event came from, when known. */
  channel: string | null;
}

export declare class WsgisseEventSource extends EventTarget {
  constructor(url: string | URL, options?: WsgisseEventSourceInit);
  static readonly CONNECTING: 0;
  static readonly OPEN: 1;
  static readonly CLOSED: 2;
  readonly url: string;
  readonly withCredentials: boolean;
  readonly readyState: 0 | 1 | 2;
  readonly lastEventId: string;
  /** The positions of a multiplexed stream in each channel; `null` for one channel. */
  readonly positions: Record<string, string> | null;
  /** How the connection is shared: "none", "worker" or "lock". */
  readonly sharing: "none" | "worker" | "lock";
  /** Why it stopped for good; `null` while it runs. */
  readonly closedReason: ClosedReason | null;
  onopen: ((this: WsgisseEventSource, event: Event) => unknown) | null;
  onmessage: ((this: WsgisseEventSource, event: WsgisseMessageEvent) => unknown) | null;
  onerror: ((this: WsgisseEventSource, event: Event) => unknown) | null;
  addEventListener(
    type: string,
    listener: ((event: WsgisseMessageEvent) => unknown) | EventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: ((event: WsgisseMessageEvent) => unknown) | EventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
  close(): void;
}

export default WsgisseEventSource;

export declare function backoffDelay(
  failures: number,
  options?: { retry?: number; min?: number; max?: number; random?: () => number },
): number;
export declare function parseRetry(value: string): number | null;
export declare function buildUrl(
  url: string | URL,
  options?: { channels?: string[]; lastEventId?: string; channelParameter?: string; base?: string | URL },
): string;
export declare function decodePosition(id: string): Record<string, string> | null;
export declare function channelOf(previousId: string, id: string): string | null;
export declare function endReason(data: string): EndReason;
export declare function shareKey(url: string, withCredentials: boolean): string;

export declare class SeenIds {
  constructor(limit?: number);
  remember(id: string): boolean;
  has(id: string): boolean;
  earliest(ids: Iterable<string>): string | null;
}

export interface ParsedEvent {
  type: string;
  data: string;
  lastEventId: string;
  hasId: boolean;
}

export declare class EventStreamParser {
  constructor(options: {
    onEvent: (event: ParsedEvent) => void;
    onRetry?: (ms: number) => void;
    onId?: (id: string) => void;
    lastEventId?: string;
  });
  lastEventId: string;
  feed(text: string): void;
}
