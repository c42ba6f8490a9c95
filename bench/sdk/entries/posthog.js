// posthog-js with its defaults for auto-capture, sending to the sink (which
// also serves posthog's lazily loaded extensions from node_modules).
import posthog from 'posthog-js';

window.__bench = { track: (i) => posthog.capture('signup', { plan: 'pro', i }) };
posthog.init('phc_bench', {
  api_host: location.origin,
  autocapture: true,
  capture_pageview: true,
  disable_session_recording: true,
  disable_surveys: true,
  advanced_disable_flags: true,
  persistence: 'localStorage',
  // Its client-side limit (10 events/s, bursts of 100) would drop most of
  // the benchmark's events unmeasured.
  // It drops every event from a browser driven by automation
  // (navigator.webdriver); this sends them, marked as bot.
  opt_out_useragent_filter: true,
  rate_limiting: { events_per_second: 1e6, events_burst_limit: 1e6 },
  loaded: () => window.__benchReady(),
});
