// Plausible demo data for the browser tests and their screenshots: a few
// households' meters with daily patterns, 30 days of history (hourly, then
// every minute for the last two days, then every 5 s for the last 15 min),
// counters that integrate the power exactly. Deterministic for a given `now`.

import { isoMs, round } from "./harness.mjs";

const HOUR = 3600e3;
const DAY = 24 * HOUR;

function noise(t, seed) {
  const x = Math.sin(t / 1000 * 12.9898 + seed * 78.233) * 43758.5453;
  return x - Math.floor(x); // 0..1
}

function hourOfDay(t) {
  return (t % DAY) / HOUR; // UTC is good enough for a pattern
}

export const PROFILES = {
  kitchen: (t) => 120 + (Math.abs(hourOfDay(t) - 18.5) < 1 ? 1800 : 0) + (Math.abs(hourOfDay(t) - 7.5) < 0.5 ? 1200 : 0) + 60 * noise(t, 1),
  "heat-pump": (t) => 900 + 600 * Math.cos((hourOfDay(t) - 4) / 24 * 2 * Math.PI) + 120 * noise(t, 2),
  "solar-roof": (t) => -Math.max(0, 3200 * Math.sin((hourOfDay(t) - 6) / 12 * Math.PI)) * (0.8 + 0.2 * noise(t, 3)),
  "ev-charger": (t) => (hourOfDay(t) >= 1 && hourOfDay(t) < 4 ? 7200 + 100 * noise(t, 4) : 0),
  office: (t) => 60 + (hourOfDay(t) >= 8 && hourOfDay(t) < 17 ? 380 : 0) + 40 * noise(t, 5),
  "server-rack": (t) => 410 + 50 * noise(t, 6),
  workshop: (t) => 30 + (noise(Math.floor(t / 600e3) * 600e3, 7) > 0.85 ? 2300 : 0),
  "garden-pump": (t) => (hourOfDay(t) >= 20 && hourOfDay(t) < 21 ? 750 : 2),
};

/** Timestamps: hourly for 30 days, every minute for the last 2 days, every 5 s for the last 15 min. */
export function demoTimes(now, { days = 30, stopBeforeMs = 0 } = {}) {
  const end = now - stopBeforeMs;
  const ts = [];
  const align = (t, step) => Math.floor(t / step) * step;
  for (let t = align(now - days * DAY, HOUR); t < now - 2 * DAY; t += HOUR) ts.push(t);
  for (let t = align(now - 2 * DAY, 60e3); t < now - 15 * 60e3; t += 60e3) ts.push(t);
  for (let t = align(now - 15 * 60e3, 5e3); t <= now - 5e3; t += 5e3) ts.push(t);
  return ts.filter((t) => t <= end);
}

/** Readings of one meter at the given times; the counter starts at startKwh. */
export function readingsFor(meterId, times, power, { startKwh = 1000 } = {}) {
  const out = [];
  let e = startKwh;
  let prevT = null;
  let prevP = 0;
  for (const t of times) {
    const p = power(t);
    // Energy counts consumption only (import); solar export leaves it still.
    if (prevT !== null) e += (Math.max(0, (prevP + p) / 2) * (t - prevT)) / 3600e6;
    prevT = t;
    prevP = p;
    const v = 229 + 3 * Math.sin(t / 3600e3) + noise(t, 9);
    out.push({
      meter_id: meterId,
      ts: isoMs(t),
      voltage: round(v, 1),
      current: round(Math.abs(p) / v, 3),
      power: round(p, 1),
      energy: round(e, 5),
      frequency: round(49.95 + 0.1 * noise(t, 10), 2),
      power_factor: round(0.9 + 0.09 * noise(t, 11), 2),
    });
  }
  return out;
}

/** All demo meters; `offline` stop sending 3 hours before now. */
export function demoFleet(now, { offline = ["garden-pump"] } = {}) {
  const all = [];
  let start = 1000;
  for (const [id, power] of Object.entries(PROFILES)) {
    const times = demoTimes(now, { stopBeforeMs: offline.includes(id) ? 3 * HOUR : 0 });
    all.push(...readingsFor(id, times, power, { startKwh: start }));
    start += 1234.5;
  }
  return all;
}
