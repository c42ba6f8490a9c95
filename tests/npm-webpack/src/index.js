// What an app does with wasm-pack's bundler build: the import instantiates
// the wasm (webpack makes this an async module), then `init` runs it.
// tests/npm.rs builds this with webpack and opens it with `?endpoint=<collector>`.
import { init } from 'waymark/bundler';

const tracker = init({
  endpoint: new URLSearchParams(location.search).get('endpoint') ?? 'http://127.0.0.1:8080',
  site: 'npm-webpack',
  sessionTimeoutMinutes: 30,
  sensitiveParams: ['token', 'email'],
});
tracker.track('npm_loaded', { bundler: 'webpack', nested: { ok: true, n: [1, 2] } });

window.tracker = tracker;
document.body.dataset.ready = 'true';
