// What run.mjs and loading.mjs share: their HTTP server on 127.0.0.1 and
// one headless Chromium that reaches nothing else (its host resolver maps
// every name but 127.0.0.1 to nothing).

// Starts `server` on a free port of 127.0.0.1; answers its origin.
export async function listenOnLoopback(server) {
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${server.address().port}`;
}

// Launches the system's Chromium, headless, through `puppeteer`.
export function launchChromium(puppeteer) {
  return puppeteer.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--no-first-run', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    ],
  });
}
