// @segment/analytics-next with its CDN settings inline (nothing fetched from
// Segment's CDN), the Segment.io destination pointed at the sink. It has no
// click auto-capture.
import { AnalyticsBrowser } from '@segment/analytics-next';

const cdnSettings = {
  integrations: { 'Segment.io': { apiKey: 'bench', apiHost: `${location.host}/v1`, protocol: 'http' } },
  // Its own usage metrics would go to api.segment.io.
  metrics: { sampleRate: 0 },
};
AnalyticsBrowser.load({ writeKey: 'bench', cdnSettings, cdnURL: location.origin }).then(([analytics]) => {
  analytics.page();
  window.__bench = { track: (i) => analytics.track('signup', { plan: 'pro', i }) };
  window.__benchReady();
});
