// The overview page (index.html): one tile per meter with its live values and
// today's kWh, searchable and sortable.
//
// Built for hundreds of meters updating every second on a wall tablet:
// - messages only change the model and mark the meter dirty; the DOM is
//   touched once per animation frame, and only for dirty tiles;
// - a tile's text nodes are created once and then only their data changes;
// - re-sorting by a live value (power, kWh, status) happens at most every few
//   seconds, so tiles do not jump around under the reader's eyes;
// - tiles off screen are skipped by the renderer (content-visibility in CSS).

import { api, iso, localMidnight, parseTs } from "./api.js";
import * as fmt from "./format.js";
import { LiveClient, showConnection } from "./live.js";
import { initThemeButton } from "./theme.js";

const SUMMARY_EVERY_MS = 60000;
const RESORT_EVERY_MS = 3000;
const AGO_EVERY_MS = 15000;
const SORT_KEY = "meterhub.sort";
const SNAPSHOT_WAIT_MS = 3000;

const $ = (id) => document.getElementById(id);
const els = {
  tiles: $("tiles"),
  search: $("search"),
  sort: $("sort"),
  count: $("count"),
  empty: $("empty"),
  loading: $("loading"),
};

/** meter_id -> { id, name, online (true|false|null), latest, ts, today, tile } */
const meters = new Map();
let gotSnapshot = false;
const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

// ---------------------------------------------------------------------------
// Tiles

function span(cls, text) {
  const s = document.createElement("span");
  if (cls) s.className = cls;
  if (text !== undefined) s.textContent = text;
  return s;
}

class Tile {
  constructor(m) {
    this.li = document.createElement("li");
    this.li.className = "tile-item";
    const a = document.createElement("a");
    a.className = "tile";
    a.href = `meter.html?id=${encodeURIComponent(m.id)}`;
    a.dataset.meterId = m.id;
    this.a = a;

    const head = span("tile-head");
    this.dot = span("dot");
    this.dot.setAttribute("aria-hidden", "true");
    this.name = span("tile-name");
    this.state = span("vh");
    head.append(this.dot, this.name, this.state);

    const p = span("tile-power");
    this.power = span("num");
    this.power.dataset.field = "power";
    this.powerUnit = span("unit");
    p.append(this.power, this.powerUnit);

    const meta = span("tile-meta");
    this.voltage = span("", "");
    this.voltage.dataset.field = "voltage";
    this.current = span("", "");
    this.current.dataset.field = "current";
    meta.append(this.voltage, span("unit", " V"), span("sep", " · "), this.current, span("unit", " A"));

    const today = span("tile-today");
    this.today = span("", "");
    this.today.dataset.field = "today";
    today.append(span("muted", "Today "), this.today, span("unit", " kWh"));

    this.note = span("tile-note muted");
    a.append(head, p, meta, today, this.note);
    this.li.append(a);
  }

  render(m, now) {
    const label = m.name || m.id;
    if (this.name.textContent !== label) this.name.textContent = label;
    this.a.title = m.name ? `${m.name} (${m.id})` : m.id;
    const online = m.online === null ? "unknown" : String(m.online);
    this.a.dataset.online = online;
    this.state.textContent = m.online === null ? "" : m.online ? ", online" : ", offline";

    const r = m.latest;
    const [pw, unit] = fmt.power(r?.power);
    this.power.textContent = pw;
    this.power.dataset.value = r ? String(r.power) : "";
    this.powerUnit.textContent = " " + unit;
    this.voltage.textContent = fmt.volts(r?.voltage);
    this.voltage.dataset.value = r ? String(r.voltage) : "";
    this.current.textContent = fmt.amps(r?.current);
    this.current.dataset.value = r ? String(r.current) : "";
    this.today.textContent = fmt.kwh(m.today);
    this.today.dataset.value = fmt.isNum(m.today) ? String(m.today) : "";
    this.a.dataset.ts = r ? r.ts : "";

    let note = "";
    if (!r) note = "no reading yet";
    else if (m.online === false) note = "last reading " + fmt.ago(m.ts, now);
    this.note.textContent = note;
  }
}

// ---------------------------------------------------------------------------
// Model

function upsert(id) {
  let m = meters.get(id);
  if (!m) {
    m = { id, name: "", online: null, latest: null, ts: null, today: null, tile: null };
    m.tile = new Tile(m);
    meters.set(id, m);
    orderChanged(true);
  }
  return m;
}

/** Keeps the reading with the greatest ts: late readings arrive live too. */
function applyReading(m, r) {
  if (!r) return false;
  const ts = parseTs(r.ts);
  if (ts === null || (m.ts !== null && ts < m.ts)) return false;
  m.latest = r;
  m.ts = ts;
  return true;
}

function applyMeter(doc, { online } = {}) {
  const m = upsert(doc.meter_id);
  if (typeof doc.name === "string") m.name = doc.name;
  if (typeof online === "boolean") m.online = online;
  applyReading(m, doc.latest);
  dirty(m);
}

// ---------------------------------------------------------------------------
// Rendering: once per frame, dirty tiles only

const dirtySet = new Set();
let frame = 0;
let firstData = false;

function dirty(m) {
  dirtySet.add(m);
  if (!frame) frame = requestAnimationFrame(flush);
}

function flush() {
  frame = 0;
  const now = Date.now();
  for (const m of dirtySet) m.tile.render(m, now);
  dirtySet.clear();
  if (orderPending && Date.now() >= nextOrderAt) reorder();
  if (!firstData) {
    firstData = true;
    els.loading.hidden = true;
  }
  updateEmpty();
}

// ---------------------------------------------------------------------------
// Sorting and search

const sorters = {
  name: (a, b) => collator.compare(a.name || a.id, b.name || b.id) || collator.compare(a.id, b.id),
  power: (a, b) => desc(a.latest?.power, b.latest?.power) || sorters.name(a, b),
  today: (a, b) => desc(a.today, b.today) || sorters.name(a, b),
  status: (a, b) => rank(a) - rank(b) || sorters.name(a, b),
};
function desc(x, y) {
  const a = fmt.isNum(x) ? x : -Infinity;
  const b = fmt.isNum(y) ? y : -Infinity;
  return b - a;
}
function rank(m) {
  return m.online === false ? 0 : m.online === null ? 1 : 2; // offline first
}

let orderPending = false;
let nextOrderAt = 0;
let orderTimer = 0;

/** now: re-sort at the next frame (user action, new meter); else within RESORT_EVERY_MS. */
function orderChanged(now = false) {
  if (!now && els.sort.value === "name") return; // live values do not move name order
  orderPending = true;
  if (now) nextOrderAt = 0;
  const wait = nextOrderAt - Date.now();
  if (wait > 0) {
    if (!orderTimer) {
      orderTimer = setTimeout(() => {
        orderTimer = 0;
        if (!frame) frame = requestAnimationFrame(flush);
      }, wait);
    }
  } else if (!frame) {
    frame = requestAnimationFrame(flush);
  }
}

function reorder() {
  orderPending = false;
  nextOrderAt = Date.now() + RESORT_EVERY_MS;
  const list = [...meters.values()].sort(sorters[els.sort.value] ?? sorters.name);
  const children = els.tiles.children;
  let same = children.length === list.length;
  for (let i = 0; same && i < list.length; i++) same = children[i] === list[i].tile.li;
  if (same) return;
  // Moving the focused tile would blur it: put the focus back afterwards.
  const focused = els.tiles.contains(document.activeElement) ? document.activeElement : null;
  const frag = document.createDocumentFragment();
  for (const m of list) frag.append(m.tile.li);
  els.tiles.append(frag);
  if (focused) focused.focus({ preventScroll: true });
  applySearch();
}

function applySearch() {
  const q = els.search.value.trim().toLowerCase();
  let shown = 0;
  for (const m of meters.values()) {
    const match = !q || m.id.toLowerCase().includes(q) || m.name.toLowerCase().includes(q);
    if (m.tile.li.hidden === match) m.tile.li.hidden = !match;
    if (match) shown++;
  }
  const total = meters.size;
  els.count.textContent = q ? `${shown} of ${total} meters` : `${total} meter${total === 1 ? "" : "s"}`;
  document.title = total ? `meterhub · ${total} meter${total === 1 ? "" : "s"}` : "meterhub";
  updateEmpty(shown);
}

function updateEmpty(shown) {
  const none = meters.size === 0;
  els.empty.hidden = !(firstData && none);
  if (shown === 0 && !none) els.count.textContent = `no meter matches “${els.search.value.trim()}”`;
}

// ---------------------------------------------------------------------------
// Today's kWh: one request for all meters, every minute and after a reconnect

let summaryTimer = 0;
let summaryAbort = null;

async function refreshSummary() {
  clearTimeout(summaryTimer);
  summaryAbort?.abort();
  const abort = (summaryAbort = new AbortController());
  const now = Date.now();
  try {
    const doc = await api.energySummary({ from: iso(localMidnight(now)), to: iso(now) }, { signal: abort.signal });
    const kwh = new Map((doc.meters ?? []).map((e) => [e.meter_id, e.kwh]));
    for (const [id, v] of kwh) if (!meters.has(id)) upsert(id);
    for (const m of meters.values()) {
      const v = kwh.get(m.id) ?? 0;
      if (m.today !== v) {
        m.today = v;
        dirty(m);
      }
    }
    if (els.sort.value === "today") orderChanged();
  } catch (e) {
    if (abort.signal.aborted) return;
    console.warn("meterhub: today's kWh not available:", e.message);
  }
  summaryTimer = setTimeout(refreshSummary, SUMMARY_EVERY_MS);
}

// ---------------------------------------------------------------------------
// Wiring

function start() {
  initThemeButton($("theme"));

  try {
    const s = localStorage.getItem(SORT_KEY);
    if (s && sorters[s]) els.sort.value = s;
  } catch {
    /* no storage */
  }
  els.sort.addEventListener("change", () => {
    try {
      localStorage.setItem(SORT_KEY, els.sort.value);
    } catch {
      /* no storage */
    }
    orderChanged(true);
  });
  els.search.addEventListener("input", applySearch);

  const live = new LiveClient();
  showConnection(live, $("conn"));
  live.addEventListener("snapshot", (e) => {
    gotSnapshot = true;
    for (const doc of e.detail.meters ?? []) applyMeter(doc, { online: doc.online });
    orderChanged(true);
  });
  live.addEventListener("reading", (e) => {
    const r = e.detail.reading;
    if (!r?.meter_id) return;
    const m = upsert(r.meter_id);
    if (applyReading(m, r)) {
      dirty(m);
      if (els.sort.value === "power") orderChanged();
    }
  });
  live.addEventListener("meter", (e) => {
    if (e.detail.meter_id) dirty(upsert(e.detail.meter_id));
  });
  live.addEventListener("status", (e) => {
    const m = meters.get(e.detail.meter_id);
    if (!m || typeof e.detail.online !== "boolean") return;
    m.online = e.detail.online;
    dirty(m);
    if (els.sort.value === "status") orderChanged();
  });
  live.addEventListener("error", (e) => console.warn("meterhub: server says:", e.detail.error));
  live.addEventListener("resync", refreshSummary);
  live.subscribe("*");
  live.start();

  // The socket's snapshot brings every meter with its latest reading; the
  // list over HTTP is the fallback when no snapshot comes in time (something
  // between the browser and the server blocks WebSockets).
  setTimeout(() => {
    if (gotSnapshot) return;
    api
      .meters()
      .then((doc) => {
        for (const m of doc.meters ?? []) applyMeter(m);
        orderChanged(true);
      })
      .catch((e) => console.warn("meterhub: meter list not available:", e.message));
  }, SNAPSHOT_WAIT_MS);
  refreshSummary();

  // "last reading 3 min ago" on offline tiles.
  setInterval(() => {
    for (const m of meters.values()) if (m.online === false) dirty(m);
  }, AGO_EVERY_MS);
}

start();
