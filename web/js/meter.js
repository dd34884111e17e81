// The meter page (meter.html?id=METER): live numbers, a rolling 15-minute
// power chart, a history chart over a chosen range with min/max bands and
// drag-to-zoom, daily energy and cost for the last 30 days, CSV download.
//
// Live data comes from the multiplexed WebSocket (subscribed to this meter
// only); history and energy come from the HTTP API and are fetched again
// after a reconnect ("resync"), so nothing is missing after an outage.
// The URL keeps the chosen range (&range=24h or &from=…&to=…), so a link or a
// reload shows the same view.
//
// The page runs once js/auth.js has a token (or the server is public). The
// meter's name and location come from GET /api/v1/meters/{id}; a meter
// deleted by an admin ("meter" / "deleted" on the socket) is shown as such.

import { api, browserTimeZone, download, iso, localMidnight, parseTs, storedToken } from "./api.js";
import { gate, watchLive } from "./auth.js";
import { axis, Chart, fitSize, uPlot, unitValues, withGaps } from "./charts.js";
import * as fmt from "./format.js";
import { LiveClient, showConnection } from "./live.js";
import { watchAlerts } from "./alerts.js";
import { initThemeButton } from "./theme.js";

const LIVE_WINDOW_MS = 15 * 60 * 1000;
const LIVE_GAP_MS = 60 * 1000; // no reading for a minute: draw a gap
const REFRESH_MS = 60 * 1000; // energy, and history ranges that end "now"
const MIN_ZOOM_MS = 60 * 1000;
const HISTORY_FIELDS = ["power", "voltage", "current"];
const CSV_FIELDS = "voltage,current,power,frequency,power_factor,energy";
const PRESETS = {
  "1h": 3600e3,
  "24h": 86400e3,
  "7d": 7 * 86400e3,
  "30d": 30 * 86400e3,
  "1y": 365 * 86400e3,
};
const FIELD_META = {
  power: { label: "Power", unit: "W", digits: 1 },
  voltage: { label: "Voltage", unit: "V", digits: 1 },
  current: { label: "Current", unit: "A", digits: 2 },
};

const $ = (id) => document.getElementById(id);
const meterId = new URLSearchParams(location.search).get("id") ?? "";

const coarsePointer = matchMedia("(pointer: coarse)").matches; // no drag-to-zoom on touch
const meter = { name: "", location: "", online: null, latest: null, ts: null, exists: null, deleted: false };

// ---------------------------------------------------------------------------
// Live numbers

const LIVE_FIELDS = {
  power: (v) => fmt.power(v),
  voltage: (v) => [fmt.volts(v), "V"],
  current: (v) => [fmt.amps(v), "A"],
  frequency: (v) => [fmt.num(v, 2), "Hz"],
  power_factor: (v) => [fmt.num(v, 2), ""],
  energy: (v) => [fmt.kwh(v), "kWh"],
};

function renderHeader() {
  const label = meter.name || meterId;
  $("title").textContent = label;
  $("subtitle").textContent = meter.name ? meterId : "";
  $("location").textContent = meter.location ? `${meter.name ? " · " : ""}${meter.location} ·` : "";
  document.title = `${label} · meterhub`;
  const st = $("meter-state");
  st.dataset.online = meter.online === null ? "unknown" : String(meter.online);
  st.textContent = meter.online === null ? "" : meter.online ? "online" : "offline";
}

function renderLive() {
  const r = meter.latest;
  for (const [field, format] of Object.entries(LIVE_FIELDS)) {
    const el = document.querySelector(`[data-live="${field}"]`);
    if (!el) continue;
    const v = r ? r[field] : undefined;
    const [text, unit] = format(v);
    el.querySelector(".num").textContent = text;
    el.querySelector(".unit").textContent = unit;
    el.dataset.value = fmt.isNum(v) ? String(v) : "";
  }
  renderAgo();
}

function renderAgo() {
  $("last-reading").textContent = meter.ts
    ? `Last reading ${fmt.dateTimeText(meter.ts)} (${fmt.ago(meter.ts)})`
    : "";
}

/** Keeps the newest reading by ts (late readings are pushed live too). */
function applyLatest(r) {
  const ts = r ? parseTs(r.ts) : null;
  if (ts === null || (meter.ts !== null && ts < meter.ts)) return false;
  meter.latest = r;
  meter.ts = ts;
  return true;
}

// ---------------------------------------------------------------------------
// Live power chart: the last 15 minutes, sliding every second

const live = { xs: [], ys: [], chart: null };

function buildLiveOpts(p, size) {
  return {
    ...size,
    legend: { show: false },
    cursor: { drag: { x: false, y: false }, points: { size: 6 } },
    scales: {
      x: { time: true, range: () => liveRange() },
      // From zero: an area whose height is the power, imported or exported.
      W: { auto: true, range: (u, min, max) => padRange(Math.min(0, min ?? 0), Math.max(0, max ?? 0)) },
    },
    axes: [axis(p), axis(p, { scale: "W", size: fitSize, values: unitValues("W", fmt.num) })],
    series: [{}, { label: "Power", scale: "W", stroke: p.power, width: 2, fill: p.powerBand, spanGaps: false }],
    hooks: { setCursor: [(u) => liveReadout(u)] },
  };
}

function liveRange() {
  const end = Math.max(Date.now(), meter.ts ?? 0);
  return [(end - LIVE_WINDOW_MS) / 1000, end / 1000];
}

function padRange(min, max) {
  if (min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
  if (min === max) return min === 0 ? [0, 1] : [min - Math.abs(min) * 0.05, max + Math.abs(max) * 0.05];
  const pad = (max - min) * 0.08;
  // Padding never crosses zero: a chart of positive values starts at 0 exactly.
  const lo = min >= 0 && min - pad < 0 ? 0 : min - pad;
  const hi = max <= 0 && max + pad > 0 ? 0 : max + pad;
  return [lo, hi];
}

function liveReadout(u) {
  const i = u.cursor.idx;
  const out = $("live-readout");
  if (i === null || i === undefined || u.data[1][i] === null) {
    out.textContent = "";
    return;
  }
  out.textContent = `${fmt.dateTimeText(u.data[0][i] * 1000)} · ${fmt.power(u.data[1][i]).join(" ")}`;
}

/** Adds one point (seconds, W) in time order; a point of a known second replaces it. */
function livePush(tsMs, power) {
  const x = tsMs / 1000;
  const { xs, ys } = live;
  let i = xs.length;
  while (i > 0 && (xs[i - 1] === null || xs[i - 1] > x)) i--;
  if (i > 0 && xs[i - 1] === x) {
    ys[i - 1] = power;
  } else {
    // A gap marker (y null) before this point when the previous one is long ago.
    if (i > 0 && x - xs[i - 1] > LIVE_GAP_MS / 1000 && ys[i - 1] !== null) {
      xs.splice(i, 0, xs[i - 1] + 1);
      ys.splice(i, 0, null);
      i++;
    }
    xs.splice(i, 0, x);
    ys.splice(i, 0, power);
  }
}

function liveTrim() {
  const min = liveRange()[0] - 60;
  let n = 0;
  while (n < live.xs.length && live.xs[n] < min) n++;
  if (n) {
    live.xs.splice(0, n);
    live.ys.splice(0, n);
  }
}

function liveDraw() {
  liveTrim();
  live.chart.setData([live.xs.slice(), live.ys.slice()], true);
}

async function loadLive() {
  const now = Date.now();
  try {
    const doc = await api.series(meterId, {
      from: iso(now - LIVE_WINDOW_MS),
      to: iso(now + 1000),
      points: 1000,
      fields: "power",
    });
    // Readings that arrived live during the request stay; older points are
    // replaced by the server's view (it has everything, also from an outage).
    const keepFrom = doc.time.length ? doc.time[doc.time.length - 1] / 1000 + doc.step_ms / 1000 : 0;
    const kept = [];
    live.xs.forEach((x, i) => {
      if (x >= keepFrom && live.ys[i] !== null) kept.push([x * 1000, live.ys[i]]);
    });
    live.xs = [];
    live.ys = [];
    doc.time.forEach((t, i) => {
      if (doc.power.avg[i] !== null) livePush(t, doc.power.avg[i]);
    });
    kept.forEach(([t, y]) => livePush(t, y));
    liveDraw();
  } catch (e) {
    if (e.status !== 404) console.warn("meterhub: live history not available:", e.message);
  }
}

// ---------------------------------------------------------------------------
// History chart

const hist = {
  preset: "24h", // or "custom"
  from: 0,
  to: 0,
  zoomStack: [],
  doc: null,
  loads: 0,
  chart: null,
  abort: null,
  show: { power: true, voltage: false, current: false },
};

function presetRange(preset, now = Date.now()) {
  return { from: now - PRESETS[preset], to: now };
}

function historyColumns(doc) {
  if (!doc) return [[], ...HISTORY_FIELDS.flatMap(() => [[], [], []])];
  const cols = HISTORY_FIELDS.flatMap((f) => [doc[f].avg, doc[f].min, doc[f].max]);
  return withGaps(doc.time, cols, gapThreshold(doc.time, doc.step_ms));
}

/**
 * Buckets further apart than this are drawn with a gap between them. Empty
 * buckets are omitted by the API, so a meter that reports less often than the
 * bucket size would otherwise be all gaps: the threshold is the bucket size or
 * three times the usual spacing of the buckets, whichever is larger.
 */
function gapThreshold(times, stepMs) {
  if (times.length < 3) return stepMs;
  const d = [];
  for (let i = 1; i < times.length; i++) d.push(times[i] - times[i - 1]);
  d.sort((a, b) => a - b);
  return Math.max(stepMs, 3 * d[d.length >> 1]);
}

function buildHistoryOpts(p, size) {
  const series = [{}];
  const bands = [];
  const axes = [axis(p)];
  let side = 3; // first visible field on the left, the others on the right
  HISTORY_FIELDS.forEach((f, k) => {
    const meta = FIELD_META[f];
    const show = hist.show[f];
    const color = p[f];
    const base = 1 + k * 3;
    series.push(
      { label: meta.label, scale: meta.unit, show, stroke: color, width: 1.5, spanGaps: false },
      { label: meta.label + " min", scale: meta.unit, show, stroke: "transparent", width: 0, spanGaps: false, points: { show: false } },
      { label: meta.label + " max", scale: meta.unit, show, stroke: "transparent", width: 0, spanGaps: false, points: { show: false } },
    );
    bands.push({ series: [base + 2, base + 1], fill: p[f + "Band"] });
    if (show) {
      const first = side === 3;
      axes.push(
        axis(p, {
          scale: meta.unit,
          side,
          size: fitSize,
          values: unitValues(meta.unit, fmt.num),
          // One grid is enough: the first axis draws it.
          ...(first ? {} : { grid: { show: false } }),
        }),
      );
      side = 1;
    }
  });
  return {
    ...size,
    legend: { show: false },
    cursor: { drag: { x: true, y: false, setScale: false }, points: { size: 6 } },
    select: { show: true },
    scales: {
      x: { time: true, range: () => [hist.from / 1000, hist.to / 1000] },
      W: { range: (u, min, max) => padRange(min, max) },
      V: { range: (u, min, max) => padRange(min, max) },
      A: { range: (u, min, max) => padRange(min, max) },
    },
    axes,
    series,
    bands,
    hooks: {
      setSelect: [onHistorySelect],
      setCursor: [historyReadout],
    },
  };
}

function historyReadout(u) {
  const i = u.cursor.idx;
  const out = $("history-readout");
  if (i === null || i === undefined || !hist.doc) {
    out.textContent = hist.doc && !coarsePointer ? "Drag across the chart to zoom in." : "";
    return;
  }
  const parts = [fmt.dateTimeText(u.data[0][i] * 1000)];
  HISTORY_FIELDS.forEach((f, k) => {
    if (!hist.show[f]) return;
    const [avg, min, max] = [u.data[1 + k * 3][i], u.data[2 + k * 3][i], u.data[3 + k * 3][i]];
    if (avg === null || avg === undefined) return;
    const d = FIELD_META[f].digits;
    parts.push(`${FIELD_META[f].label} ${fmt.num(avg, d)} ${FIELD_META[f].unit} (${fmt.num(min, d)}–${fmt.num(max, d)})`);
  });
  out.textContent = parts.join(" · ");
}

function onHistorySelect(u) {
  const sel = u.select;
  if (sel.width < 5) return;
  const a = u.posToVal(sel.left, "x") * 1000;
  const b = u.posToVal(sel.left + sel.width, "x") * 1000;
  u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
  zoomTo(a, b);
}

function zoomTo(from, to) {
  if (to - from < MIN_ZOOM_MS) {
    const mid = (from + to) / 2;
    from = mid - MIN_ZOOM_MS / 2;
    to = mid + MIN_ZOOM_MS / 2;
  }
  hist.zoomStack.push({ preset: hist.preset, from: hist.from, to: hist.to });
  setRange("custom", Math.round(from), Math.round(to));
}

function zoomOut() {
  const prev = hist.zoomStack.pop();
  if (prev) setRange(prev.preset, prev.from, prev.to, { keepStack: true });
}

/** preset: a key of PRESETS (from/to computed now) or "custom" with from/to in epoch ms. */
function setRange(preset, from, to, { keepStack = true } = {}) {
  if (!keepStack) hist.zoomStack = [];
  hist.preset = preset;
  if (preset !== "custom") ({ from, to } = presetRange(preset));
  hist.from = from;
  hist.to = to;
  renderRangeControls();
  saveUrl();
  loadHistory();
}

function renderRangeControls() {
  document.querySelectorAll("#ranges [data-range]").forEach((b) => {
    b.setAttribute("aria-pressed", String(b.dataset.range === hist.preset));
  });
  $("custom").hidden = hist.preset !== "custom";
  $("custom-from").value = fmt.toLocalInput(hist.from);
  $("custom-to").value = fmt.toLocalInput(hist.to);
  $("zoom-out").disabled = hist.zoomStack.length === 0;
}

function saveUrl() {
  const q = new URLSearchParams({ id: meterId });
  if (hist.preset === "custom") {
    q.set("from", iso(hist.from));
    q.set("to", iso(hist.to));
  } else {
    q.set("range", hist.preset);
  }
  history.replaceState(null, "", "?" + q.toString());
}

function restoreUrl() {
  const q = new URLSearchParams(location.search);
  const from = parseTs(q.get("from") ?? "");
  const to = parseTs(q.get("to") ?? "");
  if (from !== null && to !== null && to > from) {
    hist.preset = "custom";
    hist.from = from;
    hist.to = to;
  } else {
    hist.preset = PRESETS[q.get("range")] ? q.get("range") : "24h";
    Object.assign(hist, presetRange(hist.preset));
  }
}

async function loadHistory() {
  if (!loaded) return; // the meter does not exist (yet)
  hist.abort?.abort();
  const abort = (hist.abort = new AbortController());
  const status = $("history-status");
  status.textContent = "Loading…";
  const width = hist.chart?.u?.bbox ? hist.chart.u.bbox.width / devicePixelRatio : 800;
  const points = Math.max(200, Math.min(2000, Math.round(width)));
  try {
    const doc = await api.series(
      meterId,
      { from: iso(hist.from), to: iso(hist.to), points, fields: HISTORY_FIELDS.join(",") },
      { signal: abort.signal },
    );
    hist.doc = doc;
    hist.chart.setData(historyColumns(doc), true);
    status.textContent =
      doc.buckets === 0
        ? "No readings in this range."
        : `${doc.buckets} buckets of ${stepText(doc.step)}, min/max shaded`;
    $("history-chart").dataset.buckets = String(doc.buckets);
    $("history-chart").dataset.step = doc.step;
    $("history-chart").dataset.from = doc.from;
    $("history-chart").dataset.to = doc.to;
    $("history-chart").dataset.loaded = String(++hist.loads); // for tests: a load finished
    const csv = $("csv");
    csv.href = api.seriesCsvUrl(meterId, { from: iso(hist.from), to: iso(hist.to), step: doc.step, fields: CSV_FIELDS });
    csv.download = `${meterId}_${iso(hist.from).slice(0, 16).replace(":", "")}_${iso(hist.to).slice(0, 16).replace(":", "")}.csv`;
    csv.removeAttribute("aria-disabled");
    historyReadout(hist.chart.u);
  } catch (e) {
    if (abort.signal.aborted) return;
    status.textContent =
      e.code === "range_too_large" ? "This range is too long for its resolution: pick a shorter one." : `Could not load the history: ${e.message}.`;
  }
}

function stepText(step) {
  const m = /^(\d+)([smhd])$/.exec(step ?? "");
  if (!m) return step;
  const names = { s: "second", m: "minute", h: "hour", d: "day" };
  return m[1] === "1" ? `1 ${names[m[2]]}` : `${m[1]} ${names[m[2]]}s`;
}

// ---------------------------------------------------------------------------
// Daily energy: the last 30 local days, bars + a table

const energy = { chart: null, doc: null, data: [[], [], []] };

function buildEnergyOpts(p, size) {
  return {
    ...size,
    legend: { show: false },
    cursor: { drag: { x: false, y: false }, points: { show: false } },
    scales: {
      x: { time: true, range: (u, min, max) => energyXRange(min, max) },
      kWh: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] },
    },
    axes: [
      axis(p, { space: 50 }),
      axis(p, { scale: "kWh", size: fitSize, values: unitValues("kWh", fmt.num) }),
    ],
    series: [
      {},
      {
        label: "kWh",
        scale: "kWh",
        stroke: p.energy,
        fill: p.energy,
        width: 0,
        // Today (the last bar) is still growing: a lighter colour.
        paths: uPlot.paths.bars({
          size: [0.7, 40],
          align: 0,
          disp: { fill: { unit: 3, values: (u) => u.data[1].map((_, i, a) => (i === a.length - 1 ? p.energyToday : p.energy)) } },
        }),
        points: { show: false },
      },
    ],
    hooks: { setCursor: [energyReadout] },
  };
}

function energyXRange(min, max) {
  const ps = energy.doc?.periods;
  if (!ps?.length) return [min ?? 0, max ?? 1];
  return [parseTs(ps[0].start) / 1000, parseTs(ps[ps.length - 1].end) / 1000];
}

function energyReadout(u) {
  const i = u.cursor.idx;
  const out = $("energy-readout");
  const p = energy.doc?.periods?.[i];
  if (i === null || i === undefined || !p) {
    out.textContent = "";
    return;
  }
  out.textContent = `${fmt.dayText(parseTs(p.start))}: ${fmt.kwh(p.kwh)} kWh` + (p.cost === null ? "" : ` · ${fmt.money(p.cost, energy.doc.currency)}`);
}

async function loadEnergy() {
  const now = Date.now();
  try {
    const doc = await api.energy(meterId, {
      period: "day",
      tz: browserTimeZone(),
      from: iso(localMidnight(now, 29)),
      to: iso(now),
    });
    energy.doc = doc;
    const ps = doc.periods ?? [];
    // Bars centred on each (local, maybe 23 or 25 h) day.
    const xs = ps.map((p) => (parseTs(p.start) + parseTs(p.end)) / 2000);
    energy.chart.setData([xs, ps.map((p) => p.kwh)], true);
    renderEnergyTable(doc);
  } catch (e) {
    if (e.status !== 404) {
      $("energy-total").textContent = `Could not load energy: ${e.message}.`;
    }
  }
}

function renderEnergyTable(doc) {
  const cur = doc.currency;
  const hasCost = (doc.periods ?? []).some((p) => p.cost !== null);
  const tbody = $("energy-rows");
  const rows = [...(doc.periods ?? [])].reverse().map((p) => {
    const tr = document.createElement("tr");
    tr.dataset.start = p.start;
    tr.dataset.end = p.end;
    tr.dataset.kwh = String(p.kwh);
    tr.dataset.cost = p.cost === null ? "" : String(p.cost);
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = fmt.dayText(parseTs(p.start));
    const k = document.createElement("td");
    k.textContent = fmt.kwh(p.kwh);
    const c = document.createElement("td");
    c.textContent = p.cost === null ? fmt.NONE : fmt.money(p.cost, cur);
    tr.append(th, k, c);
    return tr;
  });
  tbody.replaceChildren(...rows);
  const total = doc.total ?? {};
  $("energy-total").textContent =
    `${periodCount(doc)} days: ${fmt.kwh(total.kwh)} kWh` + (hasCost && total.cost !== null ? ` · ${fmt.money(total.cost, cur)}` : "") +
    (doc.tariff === "none" ? " (no tariff set: no cost)" : "");
  $("energy-total").dataset.kwh = String(total.kwh ?? "");

  const today = doc.periods?.[doc.periods.length - 1];
  const el = document.querySelector('[data-live="today"]');
  el.querySelector(".num").textContent = today ? fmt.kwh(today.kwh) : fmt.NONE;
  el.dataset.value = today ? String(today.kwh) : "";
  $("today-cost").textContent = today && today.cost !== null ? fmt.money(today.cost, cur) : "";
}

function periodCount(doc) {
  return doc.periods?.length ?? 0;
}

// ---------------------------------------------------------------------------
// Wiring

// Whether the meter exists is learnt from the socket's first snapshot (a
// meter that never sent a reading comes with latest: null), so the page of a
// meter that does not exist yet sends no request that would fail. Fetching
// the meter over HTTP is the fallback when no snapshot comes in time.
const SNAPSHOT_WAIT_MS = 3000;
let loaded = false; // history, live chart and energy requested
let NOT_FOUND = ""; // the page's text for a meter without readings

function setExists(exists) {
  meter.exists = exists;
  $("not-found").hidden = exists !== false;
  $("meter-body").hidden = exists === false;
  if (exists === false) meter.online = null; // not "offline": it never was online
  renderHeader();
  renderLive();
  if (exists && (!loaded || meter.deleted)) {
    // First seen, or back after it was deleted (a new meter of the same id).
    loaded = true;
    meter.deleted = false;
    $("not-found").textContent = NOT_FOUND;
    loadLive();
    loadHistory();
    loadEnergy();
    loadMeterInfo();
  }
}

function applyInfo(doc) {
  meter.name = doc.name ?? "";
  meter.location = doc.location ?? "";
}

/** Name and location (the socket's messages carry neither). */
async function loadMeterInfo() {
  try {
    applyInfo(await api.meter(meterId));
    renderHeader();
  } catch (e) {
    if (e.status !== 404) console.warn("meterhub: meter not available:", e.message);
  }
}

async function loadMeterOverHttp() {
  try {
    const doc = await api.meter(meterId);
    applyInfo(doc);
    applyLatest(doc.latest);
    setExists(true);
  } catch (e) {
    if (e.status === 404) setExists(false);
    else console.warn("meterhub: meter not available:", e.message);
  }
}

/** An admin deleted the meter with all its readings. */
function meterDeleted() {
  meter.deleted = true;
  meter.latest = null;
  meter.ts = null;
  meter.name = "";
  meter.location = "";
  live.xs = [];
  live.ys = [];
  liveDraw();
  $("not-found").textContent = "This meter was deleted, with all its readings. A meter of this id appears here again with its first reading.";
  setExists(false);
}

function start() {
  if (!meterId) {
    location.replace("./");
    return;
  }
  if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(meterId) || meterId === "." || meterId === "..") {
    // Same rule as the server's: such a meter can never exist, ask nothing.
    renderHeader();
    $("not-found").textContent = "This is not a valid meter id (1–64 of A–Z a–z 0–9 _ . : -).";
    $("not-found").hidden = false;
    $("meter-body").hidden = true;
    return;
  }
  restoreUrl();
  renderHeader();
  NOT_FOUND = $("not-found").textContent;

  live.chart = new Chart($("live-chart"), buildLiveOpts, [[], []]);
  hist.chart = new Chart($("history-chart"), buildHistoryOpts, historyColumns(null));
  energy.chart = new Chart($("energy-chart"), buildEnergyOpts, [[], []]);

  // Range buttons, custom range, zoom out, field toggles.
  document.querySelectorAll("#ranges [data-range]").forEach((b) =>
    b.addEventListener("click", () => {
      if (b.dataset.range === "custom") {
        hist.preset = "custom";
        renderRangeControls();
        $("custom-from").focus();
      } else {
        setRange(b.dataset.range, 0, 0, { keepStack: false });
      }
    }),
  );
  $("custom").addEventListener("submit", (e) => {
    e.preventDefault();
    const from = fmt.fromLocalInput($("custom-from").value);
    const to = fmt.fromLocalInput($("custom-to").value);
    if (!(to > from)) {
      $("history-status").textContent = "The end of the range must be after its start.";
      return;
    }
    setRange("custom", from, to, { keepStack: false });
  });
  $("zoom-out").addEventListener("click", zoomOut);
  // A plain link cannot send the token: with one, the CSV is fetched and saved.
  $("csv").addEventListener("click", (e) => {
    if (!storedToken()) return;
    e.preventDefault();
    const a = e.currentTarget;
    download(a.href, a.download).catch((err) => {
      if (err.status !== 401) $("history-status").textContent = `Could not download the CSV: ${err.message}.`;
    });
  });
  HISTORY_FIELDS.forEach((f) => {
    const box = $("show-" + f);
    box.checked = hist.show[f];
    box.addEventListener("change", () => {
      hist.show[f] = box.checked;
      hist.chart.rebuild();
    });
  });
  renderRangeControls();

  const client = new LiveClient();
  showConnection(client, $("conn"));
  watchLive(client);
  client.addEventListener("snapshot", (e) => {
    const doc = (e.detail.meters ?? []).find((m) => m.meter_id === meterId);
    if (!doc) return;
    if (typeof doc.online === "boolean") meter.online = doc.online;
    if (typeof doc.name === "string") meter.name = doc.name;
    if (applyLatest(doc.latest)) {
      const ts = parseTs(doc.latest.ts);
      livePush(ts, doc.latest.power);
    }
    setExists(meter.exists === true || Boolean(doc.latest));
  });
  client.addEventListener("reading", (e) => {
    const r = e.detail.reading;
    if (r?.meter_id !== meterId) return;
    if (meter.exists !== true) setExists(true);
    const ts = parseTs(r.ts);
    if (ts !== null && fmt.isNum(r.power)) livePush(ts, r.power);
    if (applyLatest(r)) renderLive();
  });
  client.addEventListener("meter", (e) => {
    if (e.detail.meter_id === meterId && e.detail.event === "deleted") meterDeleted();
  });
  client.addEventListener("status", (e) => {
    if (e.detail.meter_id !== meterId || typeof e.detail.online !== "boolean") return;
    meter.online = e.detail.online;
    renderHeader();
  });
  client.addEventListener("error", (e) => console.warn("meterhub: server says:", e.detail.error));
  client.addEventListener("resync", () => {
    if (!loaded || meter.deleted) return;
    loadLive();
    if (hist.preset !== "custom") setRange(hist.preset, 0, 0);
    else loadHistory();
    loadEnergy();
  });
  watchAlerts(client, $("alerts"), meterId);
  client.subscribe([meterId]);
  client.start();

  setTimeout(() => {
    if (meter.exists === null) loadMeterOverHttp();
  }, SNAPSHOT_WAIT_MS);

  // The live chart slides once a second (and draws new points then).
  setInterval(() => {
    if (document.hidden) return;
    liveDraw();
    renderAgo();
  }, 1000);
  // Ranges that end "now" move on; today's energy grows.
  setInterval(() => {
    if (!loaded || meter.deleted) return;
    if (hist.preset !== "custom") setRange(hist.preset, 0, 0);
    loadEnergy();
  }, REFRESH_MS);
}

initThemeButton($("theme"));
gate(start);
