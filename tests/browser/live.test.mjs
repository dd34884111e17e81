// Live updates and keyboard use: a reading POSTed to the real server shows up
// on the overview and the meter page without a reload; new meters appear;
// the tiles are reachable with Tab and open with Enter. Any console error or
// page error fails the test.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { isoMs, launchBrowser, openPage, Server, unexpectedErrors, waitData, waitText } from "./lib/harness.mjs";

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

function reading(meterId, power, ts = Date.now()) {
  return { meter_id: meterId, ts: isoMs(ts), voltage: 230.4, current: +(power / 230.4).toFixed(3), power, energy: 100 + ts / 3.6e9 };
}

const tile = (id) => `a.tile[data-meter-id="${id}"]`;

test("a posted reading updates the overview tile and the meter page without a reload", { timeout: 60000 }, async () => {
  await server.post([reading("kitchen", 120.5, Date.now() - 5000), reading("hall", 40, Date.now() - 5000)]);

  const overview = await openPage(browser);
  const meterPage = await openPage(browser);
  try {
    await overview.goto(server.url + "/");
    await waitData(overview, `${tile("kitchen")} [data-field=power]`, "value", "120.5");
    await waitText(overview, "#conn", /^live$/);
    await meterPage.goto(server.url + "/meter.html?id=kitchen");
    await waitData(meterPage, "[data-live=power]", "value", "120.5");
    await waitText(meterPage, "#conn", /^live$/);
    await waitText(meterPage, "#title", /^kitchen$/);

    // Marks that a reload would wipe out.
    await overview.evaluate(() => (window.__noReload = true));
    await meterPage.evaluate(() => (window.__noReload = true));

    await server.post(reading("kitchen", 4321.5));
    await waitData(overview, `${tile("kitchen")} [data-field=power]`, "value", "4321.5");
    await waitText(overview, `${tile("kitchen")} [data-field=power]`, /^4,322$/);
    await waitData(overview, `${tile("kitchen")} [data-field=voltage]`, "value", "230.4");
    await waitData(meterPage, "[data-live=power]", "value", "4321.5");
    await waitText(meterPage, "[data-live=power] .num", /^4,322$/);
    await waitText(meterPage, "#last-reading", /Last reading/);

    // A meter that did not exist when the page loaded gets a tile.
    await server.post(reading("garage", 7.25));
    await waitData(overview, `${tile("garage")} [data-field=power]`, "value", "7.25");
    assert.equal(await overview.locator("a.tile").count(), 3);
    // The meter page is subscribed to its own meter only.
    assert.equal(await meterPage.locator("[data-live=power]").getAttribute("data-value"), "4321.5");

    assert.equal(await overview.evaluate(() => window.__noReload), true, "the overview reloaded");
    assert.equal(await meterPage.evaluate(() => window.__noReload), true, "the meter page reloaded");

    // Search narrows the tiles; the count says so.
    await overview.fill("#search", "gar");
    await waitText(overview, "#count", /^1 of 3 meters$/);
    assert.equal(await overview.locator("li.tile-item:not([hidden])").count(), 1);
    await overview.fill("#search", "");
    await waitText(overview, "#count", /^3 meters$/);

    // Sorting by power puts the biggest consumer first.
    await overview.selectOption("#sort", "power");
    await overview.waitForFunction(() => document.querySelector("#tiles a.tile")?.dataset.meterId === "kitchen");
    const order = await overview.$$eval("#tiles a.tile", (as) => as.map((a) => a.dataset.meterId));
    assert.deepEqual(order, ["kitchen", "hall", "garage"]);

    assert.deepEqual(unexpectedErrors(overview), []);
    assert.deepEqual(unexpectedErrors(meterPage), []);
  } finally {
    await overview.context().close();
    await meterPage.context().close();
  }
});

test("keyboard: Tab reaches the tiles, Enter opens a meter, the range buttons work", { timeout: 60000 }, async () => {
  await server.post(reading("kitchen", 99.5));
  const page = await openPage(browser);
  try {
    await page.goto(server.url + "/");
    await page.locator(tile("kitchen")).waitFor();
    let focused = null;
    for (let i = 0; i < 15 && !focused; i++) {
      await page.keyboard.press("Tab");
      focused = await page.evaluate(() => document.activeElement?.closest("a.tile")?.dataset.meterId ?? null);
    }
    assert.ok(focused, "no tile got the focus within 15 Tab presses");
    // The focus is visible.
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.notEqual(outline, "none");

    await Promise.all([page.waitForURL(/\/meter\.html\?id=/), page.keyboard.press("Enter")]);
    assert.match(page.url(), new RegExp(`id=${focused}`));
    await waitText(page, "#title", new RegExp(`^${focused}$`));

    // The range buttons are plain buttons: focus one, press Enter.
    await page.focus('#ranges [data-range="7d"]');
    await page.keyboard.press("Enter");
    await waitData(page, '#ranges [data-range="7d"]', "range", "7d");
    await page.waitForFunction(() => document.querySelector('#ranges [data-range="7d"]').getAttribute("aria-pressed") === "true");
    assert.match(page.url(), /range=7d/);
    // Space toggles a series.
    await page.focus("#show-voltage");
    await page.keyboard.press("Space");
    assert.equal(await page.isChecked("#show-voltage"), true);

    // Back to the overview with the keyboard: the brand link.
    await page.focus("a.brand");
    await Promise.all([page.waitForURL((u) => u.pathname === "/"), page.keyboard.press("Enter")]);
    await page.locator(tile("kitchen")).waitFor();
    assert.deepEqual(unexpectedErrors(page), []);
  } finally {
    await page.context().close();
  }
});

test("the page of a meter that has not sent a reading yet waits for it, without failed requests", { timeout: 60000 }, async () => {
  const page = await openPage(browser);
  try {
    await page.goto(server.url + "/meter.html?id=newbie");
    await page.locator("#not-found").waitFor({ state: "visible" });
    assert.equal(await page.isHidden("#meter-body"), true);
    await server.post(reading("newbie", 812.25));
    await waitData(page, "[data-live=power]", "value", "812.25");
    assert.equal(await page.isHidden("#not-found"), true);
    // Its history loads now that it exists.
    await page.waitForFunction(() => Number(document.querySelector("#history-chart").dataset.loaded) >= 1);
    assert.deepEqual(page.failedRequests ?? [], []);
    assert.deepEqual(unexpectedErrors(page), []);
  } finally {
    await page.context().close();
  }
});
