// Types for the `waymark` npm package: `init(config)` and the tracker it returns.

/** Plain JSON data: what `props` and `traits` may hold. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/**
 * Properties of an event: an object of plain data (no functions, no cycles,
 * at most 8 levels and 512 values; `undefined` members are left out).
 */
export type Props = { [key: string]: Json | undefined };

/** Where the SDK keeps the session record. */
export type StorageKind = 'local' | 'cookie' | 'memory';

/** Configuration of {@link init}. Every field but `endpoint` is optional. */
export interface Config {
  /**
   * Origin of the Waymark collector, e.g. `"https://collect.example.com"`;
   * batches go to `{endpoint}/v1/batch`. Without it (a console warning) the
   * SDK sends to the page's own origin.
   */
  endpoint: string;
  /** Site id the events belong to (1–64 of `A–Z a–z 0–9 _ . -`). Default: the page's hostname. */
  site?: string;
  /** Idle gap, in minutes, after which the next event starts a new session. Default `30`. */
  sessionTimeoutMinutes?: number;
  /** Longest a session may last, in hours; `0` turns the limit off. Default `24`. */
  maxSessionHours?: number;
  /** A session also ends at local midnight. Default `false`. */
  splitAtMidnight?: boolean;
  /**
   * A page view whose campaign (`utm_*`, `gclid`, `fbclid`, `msclkid`) differs
   * from the session's landing campaign starts a new session. Default `false`.
   */
  splitOnCampaign?: boolean;
  /** `false`: no automatic page views, page leaves or clicks. Default `true`. */
  autocapture?: boolean;
  /** `false`: no automatic page views and page leaves. Default `true`. */
  capturePageViews?: boolean;
  /** `false`: no automatic clicks. Default `true`. */
  captureClicks?: boolean;
  /**
   * `true`: when the browser sends Do Not Track or Global Privacy Control,
   * nothing is stored or sent. Default `false`.
   */
  respectDnt?: boolean;
  /**
   * `true`: nothing is stored or sent until `tracker.consent(true)`; calls are
   * held in memory (at most 100) until then. Default `false`.
   */
  requireConsent?: boolean;
  /**
   * Words (an array or one comma-separated string); query parameters whose
   * name contains one are removed from every URL. Replaces the default list
   * (`token`, `password`, `secret`, `email`, `code`, …).
   */
  sensitiveParams?: string[] | string;
  /**
   * Where to fetch the SDK's `.wasm` from, for set-ups whose bundler does not
   * handle `new URL('…', import.meta.url)`. Default: beside the package's
   * JavaScript, as the bundler emitted it. Only the first `init` uses it.
   */
  wasmUrl?: string | URL;
}

/**
 * A running tracker. Every method may be called at once: calls made before
 * the wasm has loaded are queued and replayed in order. None of them throws;
 * problems become one console warning per kind.
 */
export interface Tracker {
  /** Records a `custom` event `name` with optional plain-data `props`. */
  track(name: string, props?: Props): void;
  /** Links the visitor to `userId`; every later event carries it. */
  identify(userId: string, traits?: Props): void;
  /** Logout: ends the session (`visit_ended`, reason `reset`), forgets the user, starts a new visitor. */
  reset(): void;
  /** Sends whatever is queued now. */
  flush(): void;
  /** Stops all tracking in this browser until `optIn()`; remembered across visits. */
  optOut(): void;
  /** Resumes tracking after `optOut()`. */
  optIn(): void;
  /** With `requireConsent`: `true` stores and sends what was held, `false` drops it. */
  consent(granted: boolean): void;
  /** A page view of the current URL, for apps with auto-capture off or navigations the SDK cannot see. */
  page(): void;
  /** The current session id; `undefined` until loaded (see `ready`) or while nothing may be stored. */
  sessionId(): string | undefined;
  /** The current visitor id; `undefined` until loaded or while nothing may be stored. */
  visitorId(): string | undefined;
  /** Where the session is kept; `undefined` until loaded. */
  storageKind(): StorageKind | undefined;
  /**
   * Events the collector refused since the tracker started: whole batches
   * (a 4xx) and single events its answer lists as `rejected`; `undefined`
   * until loaded. Each kind is also warned about once on the console.
   */
  refusedEvents(): number | undefined;
  /**
   * Resolves to `true` once the SDK runs (queued calls replayed), or to
   * `false` when it could not load (outside a browser, the wasm blocked or
   * missing); it never rejects.
   */
  readonly ready: Promise<boolean>;
}

/**
 * Starts tracking: restores or creates the session and, unless auto-capture
 * is off, records a page view and starts listening. Call it once per page.
 *
 * ```ts
 * import { init } from 'waymark';
 * const tracker = init({ endpoint: 'https://collect.example.com', site: 'shop' });
 * tracker.track('signup', { plan: 'pro' });
 * ```
 */
export function init(config: Config): Tracker;
