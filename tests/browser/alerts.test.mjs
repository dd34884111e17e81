// Alerts on the dashboard: an alert raised by readings posted to the real
// server appears on the overview and on its meter page without a reload (a
// /ws "alert" message), one present before the page loaded is listed from
// GET /api/v1/alerts, and a cleared alert disappears. Any console error or
// page error fails the test.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { isoMs, launchBrowser, openPage, Server, unexpectedErrors, waitText } from "./lib/harness.mjs";

let server;
let browser;

before(async () => {
  server = await new Server().start();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

function reading(meterId, voltage, ts) {
  return { meter_id: meterId, ts: isoMs(ts), voltage, current: 1, power: 230, energy: 100 + ts / 3.6e9 };
}

async function putRules(meterId, rules) {
  const r = await server.request("PUT", `/api/v1/meters/${meterId}/alerts`, { rules });
  assert.equal(r.status, 200, r.text);
}

const item = (meter, kind) => `#alerts li.alert-item[data-meter="${meter}"][data-kind="${kind}"]`;

test("alerts show on the overview and the meter page, live, and go when cleared", { timeout: 60000 }, async () => {
  const t0 = Date.now() - 60000;
  await server.post([reading("pump", 230, t0), reading("oven", 230, t0)]);
  await putRules("pump", [{ kind: "under_voltage", threshold: 207, hysteresis: 3 }]);
  await putRules("oven", [{ kind: "over_voltage", threshold: 253, hysteresis: 3 }]);
  // Raised before any page is open: listed from the API.
  await server.post(reading("pump", 190.5, t0 + 1000));

  const overview = await openPage(browser);
  const meterPage = await openPage(browser);
  try {
    await overview.goto(server.url + "/");
    await waitText(overview, "#conn", /^live$/);
    await waitText(overview, item("pump", "under_voltage"), /Under voltage · pump voltage 190\.5 V below 207 V/);
    assert.equal(await overview.locator("#alerts").isVisible(), true);

    await meterPage.goto(server.url + "/meter.html?id=oven");
    await waitText(meterPage, "#conn", /^live$/);
    assert.equal(await meterPage.locator("#alerts").isVisible(), false, "no alert of this meter yet");

    // Raised while the pages are open: pushed on /ws.
    await overview.evaluate(() => (window.__noReload = true));
    await server.post(reading("oven", 262, t0 + 2000));
    await waitText(overview, item("oven", "over_voltage"), /Over voltage · oven voltage 262 V above 253 V/);
    await waitText(meterPage, item("oven", "over_voltage"), /Over voltage voltage 262 V above 253 V/);
    assert.equal(await meterPage.locator("#alerts li").count(), 1, "the meter page shows its own meter only");
    assert.equal(await overview.locator("#alerts li").count(), 2);
    const link = await overview.locator(`${item("oven", "over_voltage")} a`).getAttribute("href");
    assert.equal(link, "meter.html?id=oven");

    // Cleared: gone from both.
    await server.post(reading("oven", 240, t0 + 3000));
    await overview.waitForFunction(() => document.querySelectorAll("#alerts li").length === 1);
    await meterPage.waitForFunction(() => document.querySelector("#alerts").hidden);
    assert.equal(await overview.evaluate(() => window.__noReload), true, "the overview reloaded");

    assert.deepEqual(unexpectedErrors(overview), []);
    assert.deepEqual(unexpectedErrors(meterPage), []);
  } finally {
    await overview.close();
    await meterPage.close();
  }
});
