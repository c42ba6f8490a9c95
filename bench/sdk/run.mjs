// The SDK benchmark, run by `cargo xtask bench` (which installs the peers and
// bundles them into target/bench-sdk/dist/ first). One headless Chromium
// loads, one at a time and each in a fresh browser context, a page with
// Waymark (the script-tag build in www/pkg/) or one peer, all sending to this
// script's HTTP server on 127.0.0.1, and prints a Markdown table.
//
// node bench/sdk/run.mjs <workspace root>
//
// Any request to another host fails (Chromium's host resolver maps every
// name but 127.0.0.1 to nothing) and is counted in the table.

import { createServer } from 'node:http';
import { readFileSync, existsSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { createRequire } from 'node:module';

import { launchChromium, listenOnLoopback } from './common.mjs';

const root = process.argv[2] ?? process.cwd();
const benchDir = join(root, 'target/bench-sdk');
const require = createRequire(join(benchDir, 'package.json'));
const puppeteer = require('puppeteer-core');

const TRACKS = 10_000;
const IDLE_TRACKS = 50; // single calls on an idle page, 20 ms apart
const CLICKS = 1_000;
const DRAIN_MS = 6_000; // every tracker sends its queue within 5 s

const trackers = {
  none: { script: '' },
  waymark: {
    script: `<script>
      window.waymark=window.waymark||function(){(window.waymark.q=window.waymark.q||[]).push(arguments)};
      (function(){var v=window.waymark;Object.defineProperty(window,'waymark',{configurable:true,get:function(){return v},
        set:function(x){v=x;if(x&&x.tracker){window.__bench={track:function(i){x('track','signup',{plan:'pro',i:i})}};window.__benchReady();}}});})();
    </script>
    <script async src="/pkg/sdk.js" data-endpoint="ORIGIN" data-site="bench"></script>`,
  },
  '@snowplow/browser-tracker': { script: '<script src="/dist/snowplow.js"></script>' },
  'posthog-js': { script: '<script src="/dist/posthog.js"></script>' },
  '@segment/analytics-next': { script: '<script src="/dist/segment.js"></script>' },
};

// Bytes of script and wasm each page fetched, gzipped at level 9.
let transferred = 0;
let sinkRequests = 0;
const gzipCache = new Map();
function staticFile(path) {
  if (path.startsWith('/pkg/')) return join(root, 'www', path.split('?')[0]);
  if (path.startsWith('/dist/')) return join(benchDir, path.split('?')[0]);
  // posthog-js loads its extensions from `${api_host}/static/…`.
  if (path.startsWith('/static/')) {
    const file = join(benchDir, 'node_modules/posthog-js/dist', path.slice(8).split('?')[0]);
    return existsSync(file) ? file : null;
  }
  return null;
}

const server = createServer((req, res) => {
  const origin = `http://${req.headers.host}`;
  const page = req.url.match(/^\/page\/([^?]+)/);
  if (req.method === 'GET' && page) {
    const t = trackers[decodeURIComponent(page[1])];
    const html = `<!doctype html><html><head><meta charset="utf-8"><title>bench</title>
      <script>window.__t0=performance.now();window.__benchReady=function(){if(!window.__readyAt)window.__readyAt=performance.now()};</script>
      ${t ? t.script.replace('ORIGIN', origin) : ''}</head>
      <body><main><h1>Pricing</h1><p>Some text.</p><button id="cta" class="btn primary">Sign up</button></main></body></html>`;
    // Cross-origin isolated, so performance.now() ticks in 5 µs, not 100.
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-embedder-policy': 'require-corp',
    });
    return res.end(html);
  }
  const file = req.method === 'GET' ? staticFile(req.url) : null;
  if (file && existsSync(file)) {
    let body = gzipCache.get(file);
    if (!body) gzipCache.set(file, (body = gzipSync(readFileSync(file), { level: 9 })));
    transferred += body.length;
    const type = file.endsWith('.wasm') ? 'application/wasm' : 'text/javascript';
    res.writeHead(200, { 'content-type': type, 'content-encoding': 'gzip', 'cache-control': 'no-store' });
    return res.end(body);
  }
  // The sink: whatever a tracker sends is read and answered 200.
  sinkRequests += 1;
  if (process.env.BENCH_LOG_SINK) console.error(`sink: ${req.method} ${req.url.slice(0, 80)}`);
  req.resume();
  req.on('end', () => {
    res.writeHead(200, {
      'content-type': 'application/json',
      'access-control-allow-origin': req.headers.origin ?? '*',
      'access-control-allow-credentials': 'true',
      'access-control-allow-headers': req.headers['access-control-request-headers'] ?? '*',
    });
    res.end('{}');
  });
});
const base = await listenOnLoopback(server);

const browser = await launchChromium(puppeteer);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function measure(name) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  const cdp = await page.createCDPSession();
  await cdp.send('Performance.enable');
  let outside = 0;
  page.on('request', (r) => { if (!r.url().startsWith(base) && !r.url().startsWith('data:')) { outside += 1; console.error(`${name}: request elsewhere: ${r.url()}`); } });
  transferred = 0;
  sinkRequests = 0;
  await page.setUserAgent((await browser.userAgent()).replace('HeadlessChrome', 'Chrome'));
  await page.goto(`${base}/page/${encodeURIComponent(name)}`, { waitUntil: 'load' });
  const result = { name };
  if (name !== 'none') {
    await page.waitForFunction('window.__readyAt !== undefined', { timeout: 20_000 });
    result.readyMs = await page.evaluate('window.__readyAt - window.__t0');
  }
  // Clicks on a button, each timed (the dispatch itself is in the empty
  // page's figure, subtracted below).
  const clickTimes = await page.evaluate(async (clicks) => {
    const button = document.getElementById('cta');
    const out = [];
    for (let i = 0; i < clicks; i++) {
      const start = performance.now();
      button.click();
      out.push(performance.now() - start);
      if (i % 100 === 99) await new Promise((r) => setTimeout(r, 0));
    }
    return out;
  }, CLICKS);
  result.clickUs = median(clickTimes) * 1000;
  if (name !== 'none') {
    const before = await cdp.send('Performance.getMetrics');
    // A burst: 10,000 calls, each timed, yielding every 100.
    // The microtasks the calls queued (Waymark writes its queue there, once
    // per burst) run at each `await null`, and are timed apart.
    const [trackTimes, burstMicrotasks] = await page.evaluate(async (tracks) => {
      const out = [];
      let micro = 0;
      for (let i = 0; i < tracks; i++) {
        const start = performance.now();
        window.__bench.track(i);
        out.push(performance.now() - start);
        if (i % 100 === 99) {
          const t = performance.now();
          await null;
          micro += performance.now() - t;
          await new Promise((r) => setTimeout(r, 0));
        }
      }
      return [out, micro];
    }, TRACKS);
    await new Promise((r) => setTimeout(r, DRAIN_MS));
    const after = await cdp.send('Performance.getMetrics');
    const metric = (m, k) => m.metrics.find((x) => x.name === k)?.value ?? NaN;
    result.trackUs = median(trackTimes) * 1000;
    result.burstMicroUs = (burstMicrotasks / TRACKS) * 1000;
    // As a page really calls it: single calls 20 ms apart, after the burst
    // has drained.
    const [idleTimes, idleWithMicrotasks] = await page.evaluate(async (n) => {
      const out = [];
      const withMicro = [];
      for (let i = 0; i < n; i++) {
        await new Promise((r) => setTimeout(r, 20));
        const start = performance.now();
        window.__bench.track(i);
        out.push(performance.now() - start);
        await null;
        withMicro.push(performance.now() - start);
      }
      return [out, withMicro];
    }, IDLE_TRACKS);
    result.idleTrackUs = median(idleTimes) * 1000;
    result.idleMicroUs = median(idleWithMicrotasks) * 1000;
    // Script the main thread ran in its own tasks (timers, callbacks: the
    // batching, serialising and sending deferred by track()) from the first
    // track() until the queues drained, per event. DevTools' evaluation of
    // the loop itself is not in Chromium's ScriptDuration.
    result.scriptUsPerEvent =
      ((metric(after, 'ScriptDuration') - metric(before, 'ScriptDuration')) / TRACKS) * 1e6;
  }
  await cdp.send('HeapProfiler.collectGarbage');
  const metrics = await cdp.send('Performance.getMetrics');
  result.heapBytes = metrics.metrics.find((x) => x.name === 'JSHeapUsedSize')?.value;
  result.transferred = transferred;
  result.sinkRequests = sinkRequests;
  result.outside = outside;
  await context.close();
  return result;
}

const results = [];
for (const name of Object.keys(trackers)) {
  try {
    results.push(await measure(name));
  } catch (e) {
    results.push({ name, error: String(e.message ?? e).split('\n')[0] });
  }
}
await browser.close();
server.close();

const none = results.find((r) => r.name === 'none') ?? {};
const clickBase = none.clickUs ?? 0;
const kb = (b) => (b / 1000).toFixed(1) + ' KB';
console.log(`Chromium ${(await import('node:child_process')).execSync('/usr/bin/chromium --version', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim()}; ` +
  `performance.now() at 5 µs (cross-origin isolated); track(): median of ${TRACKS} single calls in a burst, and of ${IDLE_TRACKS} calls 20 ms apart after it; ` +
  `microtasks: what the calls queued as microtasks, timed at an \`await null\` after every 100 calls of the burst (per event) and after each idle call; ` +
  `clicks: median of ${CLICKS} \`button.click()\`, minus the same on a page without a tracker (${clickBase.toFixed(1)} µs); heap after ${TRACKS} track() calls, ${DRAIN_MS / 1000} s and a forced GC ` +
  `(page without a tracker: ${(none.heapBytes / 1e6).toFixed(2)} MB).\n`);
console.log('| tracker | script + wasm, gzip -9 | script start → ready | track(), median of 10,000 in a burst | microtasks per event in the burst | track(), median, idle page | track() and its microtasks, median, idle page | main-thread script per event after track() returned | per auto-captured click | JS heap after 10,000 events | requests to the sink | requests elsewhere |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of results.filter((r) => r.name !== 'none')) {
  if (r.error) {
    console.log(`| ${r.name} | failed: ${r.error} | | | | | | | | | | |`);
    continue;
  }
  const click = r.name.includes('snowplow') || r.name.includes('segment')
    ? 'no auto-capture'
    : `${Math.max(0, r.clickUs - clickBase).toFixed(0)} µs`;
  console.log(`| ${r.name} | ${kb(r.transferred)} | ${r.readyMs.toFixed(1)} ms | ${r.trackUs.toFixed(0)} µs | ${r.burstMicroUs.toFixed(1)} µs | ` +
    `${r.idleTrackUs.toFixed(0)} µs | ${r.idleMicroUs.toFixed(0)} µs | ` +
    `${r.scriptUsPerEvent.toFixed(1)} µs | ${click} | ${(r.heapBytes / 1e6).toFixed(2)} MB | ${r.sinkRequests} | ${r.outside} |`);
}
