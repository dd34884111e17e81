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
//
// Names and locations come from GET /api/v1/meters (the socket's snapshot has
// neither): once at start, and again shortly after meters are created. A
// meter deleted by an admin ("meter" / "deleted" on the socket) loses its tile.
// The page runs once js/auth.js has a token (or the server is public).

import { api, iso, localMidnight, parseTs } from "./api.js";
import * as fmt from "./format.js";
import { gate, watchLive } from "./auth.js";
import { LiveClient, showConnection } from "./live.js";
import { watchAlerts } from "./alerts.js";
import { initThemeButton } from "./theme.js";

const SUMMARY_EVERY_MS = 60000;
const RESORT_EVERY_MS = 3000;
const AGO_EVERY_MS = 15000;
const SORT_KEY = "meterhub.sort";
const METERS_AGAIN_MS = 500; // after "created" events: one list request for a burst of them

const $ = (id) => document.getElementById(id);
const els = {
  tiles: $("tiles"),
  search: $("search"),
  sort: $("sort"),
  count: $("count"),
  empty: $("empty"),
  loading: $("loading"),
};

/** meter_id -> { id, name, location, online (true|false|null), latest, ts, today, tile } */
const meters = new Map();
/** meter_id -> when it was deleted (ms): HTTP answers asked for before then do not bring it back. */
const deletedAt = new Map();
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
    this.loc = span("tile-loc");
    this.loc.dataset.field = "location";

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
    a.append(head, this.loc, p, meta, today, this.note);
    this.li.append(a);
  }

  render(m, now) {
    const label = m.name || m.id;
    if (this.name.textContent !== label) this.name.textContent = label;
    this.a.title = (m.name ? `${m.name} (${m.id})` : m.id) + (m.location ? ` · ${m.location}` : "");
    if (this.loc.textContent !== m.location) this.loc.textContent = m.location;
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
    m = { id, name: "", location: "", online: null, latest: null, ts: null, today: null, tile: null, liveAt: 0 };
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

/** A meter from a snapshot or the meter list; the tile is redrawn only if something changed. */
function applyMeter(doc, { online } = {}) {
  let changed = !meters.has(doc.meter_id);
  const m = upsert(doc.meter_id);
  if (typeof doc.name === "string" && doc.name !== m.name) {
    m.name = doc.name;
    changed = true;
  }
  const location = typeof doc.location === "string" ? doc.location : doc.location === null ? "" : m.location;
  if (location !== m.location) {
    m.location = location;
    changed = true;
  }
  if (typeof online === "boolean" && online !== m.online) {
    m.online = online;
    changed = true;
  }
  const ts = m.ts;
  if (applyReading(m, doc.latest) && m.ts !== ts) changed = true;
  if (changed) dirty(m);
  return changed;
}

/** A meter was deleted: its tile goes (a reading for that id later makes a new one). */
function removeMeter(id) {
  deletedAt.set(id, Date.now());
  const m = meters.get(id);
  if (!m) return;
  meters.delete(id);
  dirtySet.delete(m);
  const hadFocus = m.tile.li.contains(document.activeElement);
  m.tile.li.remove();
  if (hadFocus) els.tiles.focus({ preventScroll: true });
  applySearch();
}

/** Whether an HTTP answer requested at `askedAt` may still add this meter. */
function mayAdd(id, askedAt) {
  const t = deletedAt.get(id);
  return t === undefined || t < askedAt;
}

/**
 * Names, locations (and latest readings) of every meter. prune: also drop
 * the tiles of meters the list no longer has and the socket has not
 * mentioned since the list was asked for (deleted while it was down).
 */
let metersTimer = 0;
async function loadMeters({ prune = false } = {}) {
  clearTimeout(metersTimer);
  metersTimer = 0;
  const askedAt = Date.now();
  try {
    const doc = await api.meters();
    const listed = new Set();
    let changed = false;
    for (const m of doc.meters ?? []) {
      listed.add(m.meter_id);
      if (mayAdd(m.meter_id, askedAt) && applyMeter(m)) changed = true;
    }
    if (prune) for (const m of [...meters.values()]) if (!listed.has(m.id) && m.liveAt < askedAt) removeMeter(m.id);
    if (changed || !firstData) orderChanged(true);
  } catch (e) {
    console.warn("meterhub: meter list not available:", e.message);
  }
}

function loadMetersSoon() {
  if (!metersTimer) metersTimer = setTimeout(loadMeters, METERS_AGAIN_MS);
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
    const match = !q || m.id.toLowerCase().includes(q) || m.name.toLowerCase().includes(q) || m.location.toLowerCase().includes(q);
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
    for (const id of kwh.keys()) if (!meters.has(id) && mayAdd(id, now)) upsert(id);
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
  watchLive(live);
  live.addEventListener("snapshot", (e) => {
    const now = Date.now();
    for (const doc of e.detail.meters ?? []) {
      applyMeter(doc, { online: doc.online });
      meters.get(doc.meter_id).liveAt = now;
    }
    orderChanged(true);
  });
  live.addEventListener("reading", (e) => {
    const r = e.detail.reading;
    if (!r?.meter_id) return;
    deletedAt.delete(r.meter_id);
    const m = upsert(r.meter_id);
    m.liveAt = Date.now();
    if (applyReading(m, r)) {
      dirty(m);
      if (els.sort.value === "power") orderChanged();
    }
  });
  live.addEventListener("meter", (e) => {
    const id = e.detail.meter_id;
    if (!id) return;
    if (e.detail.event === "deleted") {
      removeMeter(id);
      return;
    }
    deletedAt.delete(id);
    const m = upsert(id);
    m.liveAt = Date.now();
    dirty(m);
    loadMetersSoon(); // its name and location
  });
  live.addEventListener("status", (e) => {
    const m = meters.get(e.detail.meter_id);
    if (!m || typeof e.detail.online !== "boolean") return;
    m.online = e.detail.online;
    dirty(m);
    if (els.sort.value === "status") orderChanged();
  });
  live.addEventListener("error", (e) => console.warn("meterhub: server says:", e.detail.error));
  live.addEventListener("resync", () => {
    refreshSummary();
    loadMeters({ prune: true }); // meters renamed or deleted while the socket was down
  });
  watchAlerts(live, $("alerts"));
  live.subscribe("*");
  live.start();

  // The socket's snapshot brings every meter with its latest reading and
  // online state; the list over HTTP brings names and locations (and the
  // meters, should something between the browser and the server block
  // WebSockets).
  loadMeters();
  refreshSummary();

  // "last reading 3 min ago" on offline tiles.
  setInterval(() => {
    for (const m of meters.values()) if (m.online === false) dirty(m);
  }, AGO_EVERY_MS);
}

initThemeButton($("theme"));
gate(start);
