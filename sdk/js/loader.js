// Waymark script-tag loader. `cargo xtask build-sdk` wraps it, together with
// wasm-bindgen's no-modules glue, in one function scope: the page sees no
// global but `window.waymark`.
//
// It reads the tag's data attributes, loads `sdk.wasm` from beside `sdk.js`,
// starts the tracker and replays, in order, the calls the page queued with the
// snippet `waymark(...)` before the SDK arrived (the tracker itself replays
// the pages the stub saved on `pagehide` before the SDK started on them).
//
// The wasm: build-sdk writes its content hash into WASM_HASH. When the page
// preloads `sdk.wasm` (the snippet's `<link rel="preload">`), its download
// started with this script's, and is used if its ETag names this build (it
// does unless a deploy fell between the two requests); otherwise, and for
// pages without the preload, `sdk.wasm?v=<hash>`, which the collector serves
// as immutable. Either is compiled while it streams in.
var w = window, s = document.currentScript, stub = w.waymark;
var COMMANDS = { track: 1, identify: 1, reset: 1, flush: 1, optOut: 1, optIn: 1, consent: 1, page: 1 };
if (s && !(stub && stub.tracker)) {
  var a = s.dataset;
  // Data attributes are strings: numbers and booleans are converted here,
  // and the SDK checks the config as it checks an npm caller's.
  var config = {
    endpoint: a.endpoint || new URL(s.src, location.href).origin,
    site: a.site,
    sensitiveParams: a.sensitiveParams
  };
  'sessionTimeoutMinutes maxSessionHours'.split(' ').forEach(function (k) {
    if (a[k] != null && a[k] !== '') config[k] = Number(a[k]);
  });
  'splitAtMidnight splitOnCampaign autocapture capturePageViews captureClicks respectDnt requireConsent'.split(' ').forEach(function (k) {
    if (a[k] != null) config[k] = a[k] !== 'false';
  });
  var WASM_HASH = '';
  var wasmUrl = new URL('sdk.wasm', s.src).href;
  var versioned = function () { return fetch(wasmUrl + '?v=' + WASM_HASH); };
  var preloaded = [].some.call(document.querySelectorAll('link[rel=preload]'), function (l) {
    return l.href === wasmUrl;
  });
  var wasm = preloaded
    ? fetch(wasmUrl).then(function (r) {
        return r.ok && (r.headers.get('etag') || '').indexOf(WASM_HASH) > 0 ? r : versioned();
      }, versioned)
    : versioned();
  // A first visit left (for another site, say) while the wasm is still on
  // its way: the stub saves the page in localStorage, which only a next
  // page of this site would read, so this script also sends it, at once,
  // under a key (a UUID) it gives the stub's record. The collector builds
  // its events with the SDK's own code, ids drawn from the key; the record
  // replayed on a next page gives the same events, stored once. Not for a
  // visitor with a stored session (whose next page may decide otherwise),
  // an opted-out one, under consent or an honoured Do Not Track.
  var site = config.site || location.hostname, sent, stubKey = stub && stub.k;
  if (stub && stub.p && w.crypto && crypto.randomUUID && navigator.sendBeacon) {
    stub.k = 'waymark.early.' + crypto.randomUUID();
    w.addEventListener('pagehide', function () {
      var n = navigator, mine = 'waymark.' + site + '.';
      try {
        if (w.waymark !== stub || config.requireConsent || localStorage.getItem(mine + 'session') ||
            localStorage.getItem(mine + 'optout') || document.cookie.indexOf(mine + 'session=') >= 0 ||
            (config.respectDnt && (n.doNotTrack == '1' || n.doNotTrack == 'yes' || w.doNotTrack == '1' ||
              n.globalPrivacyControl))) return;
        if (n.sendBeacon(config.endpoint.replace(/\/+$/, '') + '/v1/batch', JSON.stringify({
          v: 1, site: site, sent_at: Date.now(), events: [],
          early: {
            key: stub.k.slice(14), utc_offset_min: -new Date().getTimezoneOffset(), config: config,
            record: [stub.p.concat(document.title), stub.q, stub.t]
          }
        }))) sent = stub.q.length;
      } catch (e) {}
    });
  }
  // Whether the page is hidden for good or for the back/forward cache
  // (`pagehide`, until a `pageshow`): the wasm may still arrive then, while
  // the next page loads. The SDK does not start on such a page: its record
  // (saved, and sent above) holds its page view, which the SDK would count
  // once more. Shown again, it starts, and counts the return, as one that
  // had been running would.
  var hidden;
  w.addEventListener('pagehide', function () { hidden = 1; });
  w.addEventListener('pageshow', function () { hidden = 0; });
  wasm_bindgen({ module_or_path: wasm }).then(function start() {
    if (hidden) return w.addEventListener('pageshow', start, { once: true });
    var queued = (stub && stub.q) || [];
    // This page's own record, saved by the stub if the page was hidden (and
    // then shown again, from the back/forward cache) before the SDK
    // started: its calls are replayed below, not from storage. Removed in
    // the same task as `w.waymark` is replaced, so no `pagehide` between
    // can save it again. Once sent, though, it is the tracker that replays
    // it (into the events the collector has), and below only the calls
    // made after it. A record saved under the stub's own key before this
    // script gave it another is this page's too.
    try {
      if (stubKey) localStorage.removeItem(stubKey);
      if (sent != null) queued = queued.slice(sent);
      else if (stub && stub.k) localStorage.removeItem(stub.k);
    } catch (e) {}
    var t = wasm_bindgen.init(config);
    var api = function (command) {
      if (!COMMANDS[command]) return console.warn('waymark: unknown command "' + command + '"');
      try {
        return t[command].apply(t, [].slice.call(arguments, 1));
      } catch (e) {
        console.warn('waymark:', e);
      }
    };
    api.tracker = t;
    api.sessionId = function () { return t.sessionId(); };
    api.visitorId = function () { return t.visitorId(); };
    api.refusedEvents = function () { return t.refusedEvents(); };
    w.waymark = api;
    for (var i = 0; i < queued.length; i++) api.apply(null, queued[i]);
  }, function (e) {
    console.warn('waymark: could not load the SDK', e);
  });
}
