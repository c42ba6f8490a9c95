// The `waymark` npm entry. `cargo xtask build-npm` puts it beside `web/`,
// wasm-pack's `--target web` build of the SDK.
//
// `init(config)` answers at once with a tracker whose calls are queued until
// the wasm has loaded (as the script-tag snippet does), then replayed in
// order. The wasm is found with `new URL(…, import.meta.url)` inside the glue,
// which Vite, webpack 5, Rollup, esbuild (with a file loader) and plain
// browsers all understand. Nothing here throws into the page.
import load, { init as start } from './web/waymark_sdk.js';

const METHODS = ['track', 'identify', 'reset', 'flush', 'optOut', 'optIn', 'consent', 'page'];
const READERS = ['sessionId', 'visitorId', 'storageKind', 'refusedEvents'];

let loading;

function warn(...args) {
  if (typeof console !== 'undefined') console.warn('waymark:', ...args);
}

export function init(config) {
  let running = null;
  let queued = [];
  const tracker = {};
  const call = (method, args) => {
    try {
      return running[method](...args);
    } catch (e) {
      warn(e);
    }
  };
  for (const method of METHODS) {
    tracker[method] = (...args) => {
      if (running) call(method, args);
      else if (queued) queued.push([method, args]);
    };
  }
  for (const method of READERS) {
    tracker[method] = () => (running ? call(method, []) : undefined);
  }
  if (typeof window === 'undefined' || typeof document === 'undefined') {
    // Server-side rendering: a tracker that does nothing.
    queued = null;
    tracker.ready = Promise.resolve(false);
    return Object.freeze(tracker);
  }
  const wasmUrl = config && config.wasmUrl;
  loading = loading || load(wasmUrl ? { module_or_path: wasmUrl } : undefined);
  tracker.ready = loading.then(
    () => {
      try {
        running = start(config);
      } catch (e) {
        warn(e);
        queued = null;
        return false;
      }
      const calls = queued;
      queued = null;
      for (const [method, args] of calls) call(method, args);
      return true;
    },
    (e) => {
      warn('could not load the SDK', e);
      queued = null;
      return false;
    },
  );
  return Object.freeze(tracker);
}
