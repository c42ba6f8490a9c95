// @snowplow/browser-tracker: the core tracker, posting batches to the sink.
// It has no click auto-capture without its link-click plugin (not installed).
import { newTracker, trackPageView, trackStructEvent } from '@snowplow/browser-tracker';

newTracker('sp', location.origin, {
  appId: 'bench',
  platform: 'web',
  eventMethod: 'post',
  bufferSize: 20,
  contexts: { webPage: true },
});
trackPageView();
window.__bench = {
  track: (i) => trackStructEvent({ category: 'bench', action: 'signup', label: 'pro', value: i }),
};
window.__benchReady();
