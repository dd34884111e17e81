// History and energy on the meter page, against seeded data: the history
// chart holds exactly the buckets the series endpoint returns for the chosen
// range (1 h, 24 h, 7 d, drag-to-zoom, zoom out, 30 d, 1 y), the hover readout shows the
// seeded values, the CSV link downloads that range, and the daily energy
// table shows the kWh and cost of each local day as computed here from the
// readings themselves.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { evenReadings, launchBrowser, openPage, Server, unexpectedErrors, waitData, waitText } from "./lib/harness.mjs";

const METER = "house";
const PRICE = 0.25;
let server;
let browser;
let readings;

before(async () => {
  server = await new Server().start();
  // Every minute for the last 3 days: 600 W ± 300 W over a 6 h wave.
  const now = Date.now();
  readings = evenReadings(METER, {
    fromMs: Math.floor((now - 3 * 86400e3) / 60e3) * 60e3,
    toMs: now - 30e3,
    everyMs: 60e3,
    power: (t) => 600 + 300 * Math.sin((t / 21600e3) * 2 * Math.PI),
  });
  await server.post(readings);
  const r = await server.request("PUT", `/api/v1/meters/${METER}/tariff`, { currency: "EUR", price_per_kwh: PRICE });
  assert.equal(r.status, 200, r.text);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** What the chart element says it shows, checked against the API for the same range. */
async function chartMatchesApi(page) {
  const d = await page.$eval("#history-chart", (el) => ({ ...el.dataset }));
  const q = new URLSearchParams({ from: d.from, to: d.to, step: d.step, fields: "power" });
  const doc = await server.get(`/api/v1/meters/${METER}/series?${q}`);
  assert.equal(String(doc.buckets), d.buckets, `chart has ${d.buckets} buckets, API ${doc.buckets} for ${q}`);
  return { ...d, buckets: Number(d.buckets), doc };
}

/** Waits for the history load after the `after`-th one to finish. */
async function waitLoaded(page, after = 0) {
  await page.waitForFunction((n) => Number(document.querySelector("#history-chart").dataset.loaded ?? 0) > n, after);
  return Number(await page.getAttribute("#history-chart", "data-loaded"));
}

test("the history chart shows the seeded data for each range, zooms by dragging, downloads CSV", { timeout: 60000 }, async () => {
  const page = await openPage(browser);
  try {
    await page.goto(`${server.url}/meter.html?id=${METER}&range=1h`);
    let loads = await waitLoaded(page);
    let c = await chartMatchesApi(page);
    assert.equal(c.step, "10s", "1 h of minute readings at 10 s buckets");
    assert.ok(c.buckets >= 59 && c.buckets <= 61, `${c.buckets} buckets in the last hour`);
    await waitText(page, "#history-status", /buckets of 10 seconds/);

    // Hover: the readout shows the seeded power there.
    const box = await page.locator("#history-chart .u-over").boundingBox();
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.5);
    await waitText(page, "#history-readout", /Power \d[\d,]*\.\d W/);
    const shown = await page.textContent("#history-readout");
    const w = Number(/Power ([\d,.]+) W/.exec(shown)[1].replace(/,/g, ""));
    assert.ok(w >= 299 && w <= 901, `hovered power ${w} W is within the seeded 300…900 W`);

    // 24 h, then 7 d: coarser buckets, still exactly the API's.
    await page.click('#ranges [data-range="24h"]');
    loads = await waitLoaded(page, loads);
    c = await chartMatchesApi(page);
    assert.ok(c.buckets > 200, `${c.buckets} buckets in 24 h`);
    await page.click('#ranges [data-range="7d"]');
    loads = await waitLoaded(page, loads);
    c = await chartMatchesApi(page);
    assert.match(page.url(), /range=7d/);
    const step7d = c.step;
    // Only 3 of the 7 days have data: the chart still spans 7 days.
    assert.ok(c.buckets > 100 && c.buckets < 1000, `${c.buckets} buckets in 7 d`);

    // Drag across the last quarter of the chart: a custom range, finer buckets.
    const over = await page.locator("#history-chart .u-over").boundingBox();
    const y = over.y + over.height / 2;
    await page.mouse.move(over.x + over.width * 0.75, y);
    await page.mouse.down();
    await page.mouse.move(over.x + over.width * 0.85, y, { steps: 5 });
    await page.mouse.move(over.x + over.width * 0.95, y, { steps: 5 });
    await page.mouse.up();
    loads = await waitLoaded(page, loads);
    c = await chartMatchesApi(page);
    assert.match(page.url(), /from=.*&to=/);
    assert.equal(await page.getAttribute('#ranges [data-range="custom"]', "aria-pressed"), "true");
    assert.equal(await page.isVisible("#custom"), true, "the custom range form shows the zoomed range");
    const span = Date.parse(c.to) - Date.parse(c.from);
    assert.ok(span < 0.3 * 7 * 86400e3, `zoomed to ${span / 3600e3} h`);
    assert.ok(c.buckets > 50, `${c.buckets} buckets after zoom`);

    // The CSV link downloads exactly the visible range at the same step.
    const href = await page.getAttribute("#csv", "href");
    const csvUrl = new URL(href, server.url);
    assert.equal(csvUrl.searchParams.get("format"), "csv");
    assert.equal(csvUrl.searchParams.get("step"), c.step);
    const csv = await server.request("GET", csvUrl.pathname + csvUrl.search);
    assert.equal(csv.status, 200);
    assert.match(csv.headers.get("content-type"), /^text\/csv/);
    const lines = csv.text.split("\r\n").filter(Boolean);
    assert.match(lines[0], /^time,readings,voltage_avg,/);
    assert.equal(lines.length - 1, c.buckets, "one CSV row per bucket on the chart");

    // Zoom out returns to 7 d.
    await page.click("#zoom-out");
    loads = await waitLoaded(page, loads);
    assert.equal(await page.getAttribute('#ranges [data-range="7d"]', "aria-pressed"), "true");
    assert.equal((await chartMatchesApi(page)).step, step7d);

    // Voltage on: the readout names it.
    await page.check("#show-voltage");
    await page.mouse.move(over.x + over.width * 0.9, y);
    await waitText(page, "#history-readout", /Voltage \d+\.\d V/);

    // The long ranges come from the hourly rollup: whole-hour steps.
    for (const range of ["30d", "1y"]) {
      await page.click(`#ranges [data-range="${range}"]`);
      loads = await waitLoaded(page, loads);
      c = await chartMatchesApi(page);
      assert.match(c.step, /^\d+[hd]$/, `${range}: step ${c.step}`);
      assert.ok(c.buckets >= 3, `${range}: ${c.buckets} buckets`);
    }

    assert.deepEqual(unexpectedErrors(page), []);
  } finally {
    await page.context().close();
  }
});

/** kWh of [start, end) by the counter rules for clean data: each increase belongs to the later reading. */
function expectedKwh(startMs, endMs) {
  let kwh = 0;
  for (let i = 1; i < readings.length; i++) {
    const t = Date.parse(readings[i].ts);
    if (t >= startMs && t < endMs) kwh += readings[i].energy - readings[i - 1].energy;
  }
  return kwh;
}

test("the daily energy bars and table show each local day's kWh and cost", { timeout: 60000 }, async () => {
  const page = await openPage(browser, { timezoneId: "Europe/Berlin" });
  try {
    await page.goto(`${server.url}/meter.html?id=${METER}`);
    await page.waitForFunction(() => document.querySelectorAll("#energy-rows tr").length > 0);
    const rows = await page.$$eval("#energy-rows tr", (trs) =>
      trs.map((tr) => ({ ...tr.dataset, text: [...tr.children].map((c) => c.textContent) })),
    );
    assert.equal(rows.length, 30, "30 local days");
    // Newest first; the starts are local midnights in the browser's zone.
    assert.match(rows[0].start, /T00:00:00\+0[12]:00$/);
    for (const row of rows) {
      const want = expectedKwh(Date.parse(row.start), Date.parse(row.end));
      assert.ok(Math.abs(Number(row.kwh) - want) < 1e-6, `${row.start}: page ${row.kwh} kWh, readings ${want}`);
      assert.ok(Math.abs(Number(row.cost) - want * PRICE) < 1e-6, `${row.start}: cost ${row.cost}`);
    }
    // Yesterday was a whole day of 600 W on average: about 14.4 kWh (a 23 h or
    // 25 h DST day cuts the 6 h wave: ±0.6 kWh); shown with two decimals.
    const y = rows[1];
    const hours = (Date.parse(y.end) - Date.parse(y.start)) / 3600e3;
    assert.ok(Math.abs(Number(y.kwh) - 0.6 * hours) < (hours === 24 ? 0.05 : 0.6), `yesterday ${y.kwh} kWh in ${hours} h`);
    assert.equal(y.text[1], Number(y.kwh).toFixed(2));
    assert.equal(y.text[2], "€" + (Number(y.kwh) * PRICE).toFixed(2));
    assert.equal(rows[5].kwh, "0", "no readings 5 days ago");

    // The total line and today's card agree with the rows.
    const total = rows.reduce((s, r) => s + Number(r.kwh), 0);
    assert.ok(Math.abs(Number(await page.getAttribute("#energy-total", "data-kwh")) - total) < 1e-6);
    await waitData(page, "[data-live=today]", "value", rows[0].kwh);
    // The bars are drawn: the chart got one value per day.
    assert.equal(await page.locator("#energy-chart canvas").count(), 1);
    assert.deepEqual(unexpectedErrors(page), []);
  } finally {
    await page.context().close();
  }
});
