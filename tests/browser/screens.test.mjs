// Every page in light and dark, on a desktop (1280×800) and a phone
// (360×740), with realistic demo data: no console or page errors, nothing
// wider than the screen, no WCAG A/AA violation that axe-core finds;
// full-page screenshots are written to
// <build>/test-output/screenshots for people to look at.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";

import { demoFleet, PROFILES, readingsFor } from "./lib/fixtures.mjs";
import { axeViolations, DESKTOP, launchBrowser, openPage, PHONE, screenshotDir, Server, unexpectedErrors, waitText } from "./lib/harness.mjs";

let server;
let browser;
let feed;

// Meters that keep sending while the pages are open (every second); the
// others fall silent and are shown offline after 3 s (--offline-after).
const SENDING = Object.keys(PROFILES).filter((id) => id !== "garden-pump");

before(async () => {
  server = await new Server({ args: ["--offline-after", "3"] }).start();
  const fleet = demoFleet(Date.now());
  await server.post(fleet);
  // Counters go on from the seeded ones.
  const last = new Map(fleet.map((r) => [r.meter_id, { t: Date.parse(r.ts), e: r.energy }]));
  feed = setInterval(() => {
    const t = Date.now();
    const batch = SENDING.map((id) => {
      const prev = last.get(id);
      const [r] = readingsFor(id, [prev.t, t], PROFILES[id], { startKwh: prev.e }).slice(1);
      last.set(id, { t, e: r.energy });
      return r;
    });
    server.post(batch).catch(() => {});
  }, 1000);
  const r = await server.request("PUT", "/api/v1/tariff", {
    currency: "EUR",
    price_per_kwh: 0.32,
    windows: [{ from: "22:00", to: "06:00", price_per_kwh: 0.21 }],
  });
  assert.equal(r.status, 200, r.text);
  browser = await launchBrowser();
});

after(async () => {
  clearInterval(feed);
  await browser?.close();
  await server?.stop();
});

const PAGES = [
  {
    name: "overview",
    url: "/",
    ready: async (p) => {
      await p.waitForFunction(() => document.querySelectorAll("a.tile[data-ts]:not([data-ts=''])").length === 8);
      await p.waitForSelector('a.tile[data-meter-id="garden-pump"][data-online="false"]', { timeout: 15000 });
    },
  },
  {
    name: "meter",
    url: "/meter.html?id=heat-pump&range=24h",
    ready: async (p) => {
      await p.waitForFunction(() => document.querySelector("#history-chart").dataset.loaded && document.querySelectorAll("#energy-rows tr").length === 30);
      await waitText(p, "#conn", /^live$/);
    },
  },
];

for (const scheme of ["light", "dark"]) {
  for (const [device, viewport] of [["desktop", DESKTOP], ["phone", PHONE]]) {
    test(`${scheme} ${device}: overview and meter page render without errors`, { timeout: 60000 }, async () => {
      const page = await openPage(browser, { viewport, colorScheme: scheme });
      try {
        for (const spec of PAGES) {
          await page.goto(server.url + spec.url);
          await spec.ready(page);
          await page.waitForTimeout(300); // let the charts paint after their last resize
          const width = await page.evaluate(() => document.documentElement.scrollWidth);
          assert.ok(width <= viewport.width, `${spec.name}: page is ${width}px wide on a ${viewport.width}px screen`);
          const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
          const dark = /rgb\((\d+), (\d+), (\d+)\)/.exec(bg).slice(1).reduce((s, v) => s + Number(v), 0) < 3 * 128;
          assert.equal(dark, scheme === "dark", `${spec.name}: background ${bg} in ${scheme} mode`);
          const file = path.join(screenshotDir(), `${spec.name}-${scheme}-${device}.png`);
          await page.screenshot({ path: file, fullPage: true });
          assert.ok(fs.statSync(file).size > 10000, `${file} is suspiciously small`);
          // WCAG 2.1 A/AA as far as axe-core can tell (contrast in both themes, names, labels).
          assert.deepEqual(await axeViolations(page), [], `${spec.name} ${scheme} ${device}`);
        }
        assert.deepEqual(unexpectedErrors(page), []);
      } finally {
        await page.context().close();
      }
    });
  }
}

test("the theme button cycles auto → light → dark and is remembered", { timeout: 60000 }, async () => {
  const page = await openPage(browser, { colorScheme: "light" });
  try {
    await page.goto(server.url + "/");
    const bg = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    const light = await bg();
    await page.click("#theme"); // auto -> light
    assert.equal(await page.getAttribute("html", "data-theme"), "light");
    await page.click("#theme"); // light -> dark
    assert.equal(await page.getAttribute("html", "data-theme"), "dark");
    assert.notEqual(await bg(), light);
    await page.goto(server.url + "/meter.html?id=office");
    assert.equal(await page.getAttribute("html", "data-theme"), "dark", "the choice survives navigation");
    await page.click("#theme"); // dark -> auto
    assert.equal(await page.getAttribute("html", "data-theme"), null);
    assert.deepEqual(unexpectedErrors(page), []);
  } finally {
    await page.context().close();
  }
});
