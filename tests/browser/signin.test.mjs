// Sign-in against a server with the defaults a user gets (keys needed,
// docs/api.md "Authentication"): the sign-in screen (screenshots, axe), a
// wrong token and a device key are refused with their own messages, a read
// token shows the meters with live readings over the WebSocket (token sent as
// a subprotocol, never in the URL), every API request carries the token,
// reload keeps the session, a deleted meter loses its tile, revoking the
// token (next API call, or the next WebSocket reconnect) returns to sign-in,
// sign out works. And with --public-read: no sign-in needed, "Sign in"
// offered in the header.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";

import {
  axeViolations,
  DESKTOP,
  isoMs,
  launchBrowser,
  openPage,
  PHONE,
  screenshotDir,
  Server,
  unexpectedErrors,
  waitData,
  waitText,
  WEB_ROOT,
} from "./lib/harness.mjs";

let server;
let browser;
let kitchenKey; // the device key of "kitchen"

// The browser itself logs every refused request as a console error: the 401s
// are what these tests provoke (no token yet, a wrong one, a revoked one).
const REFUSED = [/Failed to load resource: the server responded with a status of 401/];
// ... and, for a revoked token, the WebSocket upgrade the server refuses; while
// the server restarts, the refused connections.
const RECONNECT = [
  ...REFUSED,
  /WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/ws' failed/,
  /Failed to load resource: net::ERR_CONNECTION_REFUSED/,
];

before(async () => {
  server = await new Server({ secure: true }).start();
  const reg = await server.registerMeter({ meter_id: "kitchen", name: "Kitchen", location: "Ground floor", interval_s: 10 });
  kitchenKey = reg.device_key;
  assert.match(kitchenKey, /^mhd_/);
  await server.post(reading("kitchen", 812.5, Date.now() - 3000), { token: kitchenKey });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

function reading(meterId, power, ts = Date.now()) {
  return { meter_id: meterId, ts: isoMs(ts), voltage: 230.2, current: +(power / 230.2).toFixed(3), power, energy: 50 + ts / 3.6e9 };
}

const tile = (id) => `a.tile[data-meter-id="${id}"]`;

async function visible(page, selector, timeout) {
  await page.locator(selector).waitFor({ state: "visible", timeout });
}

async function signIn(page, token) {
  await visible(page, "#signin");
  await page.fill("#token", token);
  await page.click("#signin-submit");
}

async function storedToken(page) {
  return page.evaluate(() => localStorage.getItem("meterhub.token"));
}

/** Revokes an API token and waits until the server refuses it. */
async function revoke(id, token) {
  const r = await server.request("DELETE", `/api/v1/tokens/${id}`);
  assert.equal(r.status, 200, r.text);
  const deadline = Date.now() + 5000;
  while ((await server.request("GET", "/api/v1/whoami", undefined, { token })).status !== 401) {
    assert.ok(Date.now() < deadline, "the revoked token is still accepted after 5 s");
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** Records the API requests and WebSocket handshakes of a page (through the DevTools protocol). */
async function recordTraffic(page) {
  const traffic = { api: [], ws: [] };
  page.on("request", (req) => {
    if (new URL(req.url()).pathname.startsWith("/api/")) traffic.api.push({ url: req.url(), auth: req.headers().authorization ?? "" });
  });
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  const byId = new Map();
  cdp.on("Network.webSocketCreated", (e) => byId.set(e.requestId, { url: e.url }));
  cdp.on("Network.webSocketWillSendHandshakeRequest", (e) => {
    const h = Object.fromEntries(Object.entries(e.request.headers).map(([k, v]) => [k.toLowerCase(), v]));
    Object.assign(byId.get(e.requestId) ?? {}, { protocols: h["sec-websocket-protocol"] ?? "", authorization: h.authorization ?? "" });
  });
  cdp.on("Network.webSocketHandshakeResponseReceived", (e) => {
    const h = Object.fromEntries(Object.entries(e.response.headers).map(([k, v]) => [k.toLowerCase(), v]));
    const ws = byId.get(e.requestId);
    if (ws) {
      ws.status = e.response.status;
      ws.answered = h["sec-websocket-protocol"] ?? "";
      traffic.ws.push(ws);
    }
  });
  return traffic;
}

test("the pages have no inline script or style (the CSP forbids them)", () => {
  for (const f of ["index.html", "meter.html"]) {
    const html = fs.readFileSync(path.join(WEB_ROOT, f), "utf8");
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/i, `${f}: inline <script>`);
    assert.doesNotMatch(html, /\sstyle\s*=/i, `${f}: style= attribute`);
    assert.doesNotMatch(html, /<style/i, `${f}: <style>`);
    assert.doesNotMatch(html, /\son[a-z]+\s*=/i, `${f}: inline event handler`);
  }
});

for (const [scheme, device, viewport] of [["light", "desktop", DESKTOP], ["dark", "phone", PHONE]]) {
  test(`${scheme} ${device}: without a token the dashboard shows the sign-in form`, { timeout: 60000 }, async () => {
    const page = await openPage(browser, { viewport, colorScheme: scheme, allow: REFUSED });
    try {
      await page.goto(server.url + "/");
      await visible(page, "#signin");
      assert.equal(await page.isHidden("#main"), true, "the dashboard stays hidden");
      assert.equal(await page.getAttribute("#token", "type"), "password");
      assert.equal(await page.locator("#token").evaluate((el) => el.labels[0]?.textContent), "API token");
      assert.equal(await page.evaluate(() => document.activeElement?.id), "token", "the token field has the focus");
      await waitText(page, "#signin-help", /Paste an API token \(read or admin\)\. Create one with\s+meterhub token create --scope read --name dashboard/);
      assert.equal(await page.textContent("#signin-submit"), "Sign in");
      assert.equal(await page.isHidden("#signin-skip"), true, "no way around the sign-in on a server that needs keys");
      assert.equal(await page.isHidden("#auth-btn"), true);
      assert.equal(await page.title(), "Sign in · meterhub");
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= viewport.width, `page is ${width}px wide on a ${viewport.width}px screen`);
      const file = path.join(screenshotDir(), `signin-${scheme}-${device}.png`);
      await page.screenshot({ path: file, fullPage: true });
      assert.ok(fs.statSync(file).size > 5000, `${file} is suspiciously small`);
      assert.deepEqual(await axeViolations(page), [], `sign-in ${scheme} ${device}`);

      // The meter page asks for a token too.
      await page.goto(server.url + "/meter.html?id=kitchen");
      await visible(page, "#signin");
      assert.equal(await page.isHidden("#main"), true);
      assert.deepEqual(unexpectedErrors(page), []);
    } finally {
      await page.context().close();
    }
  });
}

test("an empty or wrong token is refused with an error; a device key gets its own message", { timeout: 60000 }, async () => {
  const page = await openPage(browser, { allow: REFUSED });
  try {
    await page.goto(server.url + "/");
    await visible(page, "#signin");

    await page.click("#signin-submit");
    await waitText(page, "#signin-error", /Paste an API token first/);

    await signIn(page, "mht_000000000000_notarealtokennotarealtokennotarealtoken0");
    await waitText(page, "#signin-error", /not accepted: it is unknown, revoked or mistyped/);
    assert.equal(await page.getAttribute("#token", "aria-invalid"), "true");
    assert.equal(await page.getAttribute("#signin-error", "role"), "alert");
    assert.equal(await page.isHidden("#main"), true);
    assert.equal(await storedToken(page), null, "a refused token is not stored");
    const file = path.join(screenshotDir(), "signin-error-light-desktop.png");
    await page.screenshot({ path: file, fullPage: true });
    assert.deepEqual(await axeViolations(page), [], "sign-in with an error");

    await signIn(page, "not a token");
    await waitText(page, "#signin-error", /not an API token/);

    await signIn(page, kitchenKey);
    await waitText(page, "#signin-error", /this is a device key; use an API token/i);
    assert.equal(await page.getAttribute("#signin-error", "data-kind"), "device");
    assert.equal(await storedToken(page), null, "a device key is not stored");
    assert.equal(await page.isHidden("#main"), true);
    await page.screenshot({ path: path.join(screenshotDir(), "signin-device-key-light-desktop.png"), fullPage: true });
    assert.deepEqual(unexpectedErrors(page), []);
  } finally {
    await page.context().close();
  }
});

test("a read token signs in: meters, live readings over the authenticated WebSocket, reload, deleted meters, meter page, CSV", { timeout: 90000 }, async () => {
  const tok = await server.createToken("dashboard", "read");
  const page = await openPage(browser, { allow: REFUSED });
  const traffic = await recordTraffic(page);
  try {
    await page.goto(server.url + "/");
    await signIn(page, tok.token);
    await visible(page, "#main");
    assert.equal(await page.isHidden("#signin"), true);
    await waitData(page, `${tile("kitchen")} [data-field=power]`, "value", "812.5");
    await waitText(page, `${tile("kitchen")} .tile-name`, /^Kitchen$/);
    await waitText(page, `${tile("kitchen")} [data-field=location]`, /^Ground floor$/);
    await waitText(page, "#conn", /^live$/);
    await waitText(page, "#who", /^dashboard · read$/);
    assert.equal(await page.textContent("#auth-btn"), "Sign out");
    assert.equal(await storedToken(page), tok.token);

    // A reading posted now, with the device key, arrives over the WebSocket.
    await page.evaluate(() => (window.__noReload = true));
    await server.post(reading("kitchen", 1999.5), { token: kitchenKey });
    await waitData(page, `${tile("kitchen")} [data-field=power]`, "value", "1999.5");
    assert.equal(await page.evaluate(() => window.__noReload), true, "the page reloaded");
    await page.screenshot({ path: path.join(screenshotDir(), "signin-signed-in-light-desktop.png"), fullPage: true });
    assert.equal(await page.evaluate(() => document.activeElement?.id), "main", "the focus moved into the page");
    // The header fits a phone (the token's name is left out there).
    await page.setViewportSize(PHONE);
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= PHONE.width, `signed in, the page is ${width}px wide on a ${PHONE.width}px screen`);
    assert.equal(await page.isVisible("#auth-btn"), true);
    await page.screenshot({ path: path.join(screenshotDir(), "signin-signed-in-light-phone.png"), fullPage: true });
    await page.setViewportSize(DESKTOP);

    // The socket offered the token as a subprotocol, not in its URL; the
    // server answered "meterhub" and did not echo the token.
    assert.ok(traffic.ws.length >= 1, "no WebSocket handshake seen");
    for (const ws of traffic.ws) {
      assert.equal(ws.status, 101);
      assert.equal(ws.protocols.split(/,\s*/).join(","), `meterhub,bearer.${tok.token}`);
      assert.equal(ws.answered, "meterhub");
      assert.ok(!ws.url.includes(tok.token), "the token is in the WebSocket URL");
    }
    // Every API request after the sign-in carried the token.
    const signedIn = traffic.api.findIndex((r) => r.url.endsWith("/api/v1/whoami") && r.auth === `Bearer ${tok.token}`);
    assert.ok(signedIn >= 0, "the sign-in did not check the token with whoami");
    const after = traffic.api.slice(signedIn + 1);
    assert.ok(after.some((r) => r.url.includes("/api/v1/meters")), "no meter list request");
    for (const r of after) assert.equal(r.auth, `Bearer ${tok.token}`, `${r.url} without the token`);

    // Reload: still signed in.
    await page.reload();
    await visible(page, "#main");
    await waitData(page, `${tile("kitchen")} [data-field=power]`, "value", "1999.5");
    await waitText(page, "#who", /^dashboard · read$/);
    assert.equal(await page.isHidden("#signin"), true);

    // A meter deleted by an admin loses its tile at once.
    const attic = await server.registerMeter({ meter_id: "attic", name: "Attic" });
    await server.post(reading("attic", 42), { token: attic.device_key });
    await waitData(page, `${tile("attic")} [data-field=power]`, "value", "42");
    await waitText(page, "#count", /^2 meters$/);
    const del = await server.request("DELETE", "/api/v1/meters/attic?confirm=attic");
    assert.equal(del.status, 200, del.text);
    await page.locator(tile("attic")).waitFor({ state: "detached" });
    await waitText(page, "#count", /^1 meter$/);
    assert.equal(await page.locator("a.tile").count(), 1);

    // The meter page: name, location, live value, history, CSV with the token.
    await page.goto(server.url + "/meter.html?id=kitchen&range=1h");
    await visible(page, "#main");
    await waitText(page, "#title", /^Kitchen$/);
    await waitText(page, "#location", /Ground floor/);
    await waitData(page, "[data-live=power]", "value", "1999.5");
    await waitText(page, "#conn", /^live$/);
    await page.waitForFunction(() => document.querySelector("#history-chart").dataset.loaded);
    await server.post(reading("kitchen", 321.25), { token: kitchenKey });
    await waitData(page, "[data-live=power]", "value", "321.25");
    const [dl] = await Promise.all([page.waitForEvent("download"), page.click("#csv")]);
    const csv = fs.readFileSync(await dl.path(), "utf8");
    assert.match(csv, /^time,readings,voltage_avg,/);
    assert.match(dl.suggestedFilename(), /^kitchen_.*\.csv$/);
    await page.screenshot({ path: path.join(screenshotDir(), "signin-meter-signed-in-light-desktop.png"), fullPage: true });

    // The meter is deleted while its page is open.
    const del2 = await server.registerMeter({ meter_id: "cellar" });
    await server.post(reading("cellar", 5), { token: del2.device_key });
    await page.goto(server.url + "/meter.html?id=cellar");
    await waitData(page, "[data-live=power]", "value", "5");
    assert.equal((await server.request("DELETE", "/api/v1/meters/cellar?confirm=cellar")).status, 200);
    await visible(page, "#not-found");
    await waitText(page, "#not-found", /deleted/);
    assert.equal(await page.isHidden("#meter-body"), true);

    assert.deepEqual(unexpectedErrors(page), []);
  } finally {
    await page.context().close();
  }
});

test("a revoked token: the next API call returns to sign-in with a message", { timeout: 60000 }, async () => {
  const tok = await server.createToken("revoked-by-call", "read");
  const page = await openPage(browser, { allow: REFUSED });
  try {
    await page.goto(server.url + "/meter.html?id=kitchen&range=24h");
    await signIn(page, tok.token);
    await visible(page, "#main");
    await page.waitForFunction(() => document.querySelector("#history-chart").dataset.loaded);

    await revoke(tok.id, tok.token);
    await page.click('#ranges [data-range="1h"]'); // asks the API for that range
    await visible(page, "#signin");
    await waitText(page, "#signin-reason", /no longer accepted/);
    assert.equal(await page.isHidden("#main"), true);
    assert.equal(await storedToken(page), null, "the revoked token was not dropped");
    assert.equal(new URL(page.url()).searchParams.get("id"), "kitchen", "the page stays on its meter");
    await page.screenshot({ path: path.join(screenshotDir(), "signin-revoked-light-desktop.png"), fullPage: true });

    // A new token brings the same meter page back.
    const again = await server.createToken("again", "read");
    await signIn(page, again.token);
    await visible(page, "#main");
    await waitText(page, "#title", /^Kitchen$/);
    await page.waitForFunction(() => document.querySelector("#history-chart").dataset.loaded);
    assert.deepEqual(unexpectedErrors(page), []);
  } finally {
    await page.context().close();
  }
});

test("a revoked token: the next WebSocket reconnect returns to sign-in", { timeout: 90000 }, async () => {
  const tok = await server.createToken("revoked-by-reconnect", "read");
  const page = await openPage(browser, { allow: RECONNECT });
  try {
    await page.goto(server.url + "/");
    await signIn(page, tok.token);
    await waitText(page, "#conn", /^live$/);
    await waitData(page, `${tile("kitchen")} [data-field=power]`, "value", "321.25");

    await revoke(tok.id, tok.token);
    // An open socket stays open; the server's restart makes the page reconnect.
    const port = server.port;
    await server.stop();
    await server.start(port);
    await visible(page, "#signin", 30000);
    await waitText(page, "#signin-reason", /no longer accepted/);
    assert.equal(await storedToken(page), null);
    assert.deepEqual(unexpectedErrors(page), []);
  } finally {
    await page.context().close();
  }
});

test("sign out forgets the token and returns to sign-in", { timeout: 60000 }, async () => {
  const tok = await server.createToken("leaving", "admin");
  const page = await openPage(browser, { allow: REFUSED });
  try {
    await page.goto(server.url + "/");
    await signIn(page, tok.token);
    await waitText(page, "#who", /^leaving · admin$/);
    await page.click("#auth-btn");
    await visible(page, "#signin");
    await waitText(page, "#signin-reason", /signed out/);
    assert.equal(await storedToken(page), null);
    await page.reload();
    await visible(page, "#signin");
    assert.equal(await page.isHidden("#main"), true);
    // The token itself still works (signing out does not revoke it).
    assert.equal((await server.request("GET", "/api/v1/whoami", undefined, { token: tok.token })).status, 200);
    assert.deepEqual(unexpectedErrors(page), []);
  } finally {
    await page.context().close();
  }
});

test("with --public-read the dashboard needs no sign-in and offers one", { timeout: 60000 }, async () => {
  const lab = await new Server({ args: [] }).start(); // lab mode: --public-read
  const page = await openPage(browser, { allow: REFUSED });
  try {
    await lab.post(reading("porch", 12.5));
    const tok = await lab.createToken("wall-tablet", "read");
    await page.goto(lab.url + "/");
    await visible(page, "#main");
    await waitData(page, `${tile("porch")} [data-field=power]`, "value", "12.5");
    assert.equal(await page.isHidden("#signin"), true);
    assert.equal(await page.textContent("#auth-btn"), "Sign in");
    assert.equal(await page.isHidden("#who"), true);

    // Sign in, then go back without: the form can be left.
    await page.click("#auth-btn");
    await visible(page, "#signin");
    await visible(page, "#signin-skip");
    await page.click("#signin-skip");
    await visible(page, "#main");

    await page.click("#auth-btn");
    await signIn(page, tok.token);
    await visible(page, "#main");
    await waitText(page, "#who", /^wall-tablet · read$/);
    assert.equal(await page.textContent("#auth-btn"), "Sign out");
    await lab.post(reading("porch", 13.5));
    await waitData(page, `${tile("porch")} [data-field=power]`, "value", "13.5");

    // Signing out leaves the public dashboard.
    await page.click("#auth-btn");
    await visible(page, "#main");
    await waitText(page, "#auth-btn", /^Sign in$/);
    assert.equal(await storedToken(page), null);

    // A stored token revoked meanwhile: explained, and the public dashboard
    // is one click away.
    await page.click("#auth-btn");
    await signIn(page, tok.token);
    await waitText(page, "#who", /^wall-tablet · read$/);
    assert.equal((await lab.request("DELETE", `/api/v1/tokens/${tok.id}`)).status, 200);
    await page.reload();
    await visible(page, "#signin");
    await waitText(page, "#signin-reason", /no longer accepted/);
    assert.equal(await storedToken(page), null);
    await page.click("#signin-skip");
    await visible(page, "#main");
    await waitData(page, `${tile("porch")} [data-field=power]`, "value", "13.5");
    await waitText(page, "#auth-btn", /^Sign in$/);
    assert.deepEqual(unexpectedErrors(page), []);
  } finally {
    await page.context().close();
    await lab.stop();
  }
});
