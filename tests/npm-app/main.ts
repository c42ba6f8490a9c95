// What an app does with the npm package: import, init, call at once.
// tests/npm.rs type-checks this file (tsc), builds it with `vite build` and
// opens it with `?endpoint=<collector>`.
import { init, type Config, type Tracker } from 'waymark';

const config: Config = {
  endpoint: new URLSearchParams(location.search).get('endpoint') ?? 'http://127.0.0.1:8080',
  site: 'npm-app',
  sessionTimeoutMinutes: 30,
  sensitiveParams: ['token', 'email'],
};
const tracker: Tracker = init(config);
// Called before the wasm has loaded: queued, then replayed.
tracker.track('npm_loaded', { bundler: 'vite', nested: { ok: true, n: [1, 2] } });

declare global {
  interface Window {
    tracker: Tracker;
  }
}
window.tracker = tracker;
tracker.ready.then((running: boolean) => {
  document.body.dataset.ready = String(running);
});
