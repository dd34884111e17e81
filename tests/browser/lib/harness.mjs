// Harness for the browser tests: the real meterhub binary on an ephemeral
// port with a temporary database and the built web root, and Debian's
// headless Chromium driven by playwright-core.
//
// Everything is bounded: server start, every page wait and every HTTP request
// has a deadline, and every process started here is killed when the test
// file ends — also when it fails or is interrupted (see `cleanup`).
//
// Environment (set by ctest, see CMakeLists.txt beside this file):
//   METERHUB_BIN          the meterhub binary (required)
//   METERHUB_WEB_ROOT     the built web root (default: <dir of the binary>/web)
//   METERHUB_WEB_SRC      web/ sources, whose node_modules holds playwright-core
//   METERHUB_TEST_OUTPUT  where screenshots go (default: <binary dir>/test-output)
//   CHROMIUM              the browser (default /usr/bin/chromium)

import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));

export const BIN = process.env.METERHUB_BIN ? path.resolve(process.env.METERHUB_BIN) : "";
export const WEB_ROOT = path.resolve(process.env.METERHUB_WEB_ROOT || path.join(path.dirname(BIN), "web"));
const WEB_SRC = path.resolve(process.env.METERHUB_WEB_SRC || path.join(here, "../../../web"));
export const OUTPUT = path.resolve(process.env.METERHUB_TEST_OUTPUT || path.join(path.dirname(BIN), "test-output"));
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

const START_TIMEOUT_MS = 10000;
const STOP_TIMEOUT_MS = 8000;
const HTTP_TIMEOUT_MS = 10000;
const LISTEN_RE = /listening on http:\/\/127\.0\.0\.1:(\d+)/;

function check() {
  if (!BIN || !fs.existsSync(BIN)) throw new Error(`METERHUB_BIN=${BIN || "(unset)"} is not the meterhub binary`);
  if (!fs.existsSync(path.join(WEB_ROOT, "index.html")))
    throw new Error(`web root ${WEB_ROOT} has no index.html: build the 'web' target first`);
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: apt-get install chromium (scripts/install-deps.sh)`);
}

// ---------------------------------------------------------------------------
// Cleanup of everything this process started

const children = new Set();
const tempDirs = new Set();

function killAllSync() {
  for (const p of children) {
    try {
      p.kill("SIGKILL");
    } catch {
      /* gone */
    }
  }
  children.clear();
  for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}
process.on("exit", killAllSync);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    killAllSync();
    process.exit(128 + (os.constants.signals[sig] ?? 1));
  });
}

export function tempDir(prefix = "meterhub-browser-") {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}

// ---------------------------------------------------------------------------
// The server

// An admin token for the harness's own requests (tariffs, registering
// meters): made with `meterhub token create` before the first start, so the
// server prints none, and kept in the database's directory, so that a new
// Server on the same dir (a restart) has it too.
function adminTokenFor(dir) {
  const file = path.join(dir, "admin-token");
  if (fs.existsSync(file)) return fs.readFileSync(file, "utf8").trim();
  const out = execFileSync(BIN, ["token", "create", "--scope", "admin", "--name", "browser-tests", "--db", path.join(dir, "meterhub.db")], {
    encoding: "utf8",
    timeout: START_TIMEOUT_MS,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const token = out.trim();
  if (!/^mht_\S+$/.test(token)) throw new Error(`meterhub token create printed ${JSON.stringify(out.slice(0, 200))}, not a token`);
  fs.writeFileSync(file, token + "\n", { mode: 0o600 });
  return token;
}

export class Server {
  /** dir: holds the database (kept across restarts); port 0 picks a free one. */
  // secure: the defaults a user gets (keys needed). Otherwise lab mode, for
  // the suites that test the dashboard rather than access control.
  // Either way `adminToken` holds an admin API token, which request() sends
  // unless told otherwise.
  constructor({ dir = tempDir(), args = [], secure = false } = {}) {
    this.dir = dir;
    this.args = secure
      ? args
      : ["--public-read", "--auto-register", "--ip-rate", "0", "--max-connections-per-ip", "0",
         ...args];
    this.port = 0;
    this.proc = null;
    this.log = [];
    this.adminToken = "";
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(port = this.port) {
    check();
    if (!this.adminToken) this.adminToken = adminTokenFor(this.dir);
    const cmd = [
      "--listen", `127.0.0.1:${port}`,
      "--db", path.join(this.dir, "meterhub.db"),
      "--web-root", WEB_ROOT,
      // Seeded readings are days old: keep them.
      "--retention-raw-days", "0",
      ...this.args,
    ];
    const proc = spawn(BIN, cmd, { stdio: ["ignore", "pipe", "pipe"] });
    this.proc = proc;
    children.add(proc);
    proc.on("exit", () => children.delete(proc));
    const lines = this.log;
    const onData = (buf) => {
      for (const l of buf.toString().split("\n")) if (l) lines.push(l);
    };
    proc.stdout.on("data", onData);
    proc.stderr.on("data", onData);

    const started = lines.length;
    this.port = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`no "listening on" within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
      const poll = setInterval(() => {
        for (const l of lines.slice(started)) {
          const m = LISTEN_RE.exec(l);
          if (m) return done(null, Number(m[1]));
        }
      }, 20);
      const onExit = (code) => done(new Error(`meterhub exited (${code}) during start`));
      proc.once("exit", onExit);
      function done(err, value) {
        clearTimeout(timer);
        clearInterval(poll);
        proc.off("exit", onExit);
        if (err) {
          proc.kill("SIGKILL");
          reject(new Error(`${err.message}; ${BIN} ${cmd.join(" ")}\n${lines.slice(started).join("\n")}`));
        } else {
          resolve(value);
        }
      }
    });
    return this;
  }

  /** SIGKILL: the server vanishes as in a crash or a power cut. */
  async kill() {
    await this.#stop("SIGKILL");
  }

  /** SIGTERM, then SIGKILL after a grace period. */
  async stop() {
    await this.#stop("SIGTERM");
  }

  async #stop(signal) {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((resolve) => proc.once("exit", resolve));
    proc.kill(signal);
    const t = setTimeout(() => proc.kill("SIGKILL"), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(t);
  }

  /**
   * token: the key sent as `Authorization: Bearer` — the admin token unless
   * given; null or "" sends none.
   */
  async request(method, urlPath, body, { token = this.adminToken } = {}) {
    const headers = body === undefined ? {} : { "Content-Type": "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    const res = await fetch(this.url + urlPath, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
    });
    const text = await res.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, headers: res.headers, text, json };
  }

  async get(urlPath, opts) {
    const r = await this.request("GET", urlPath, undefined, opts);
    if (r.status !== 200) throw new Error(`GET ${urlPath} -> ${r.status} ${r.text.slice(0, 300)}`);
    return r.json ?? r.text;
  }

  /** Posts readings in batches of at most 5000 (the server's default limit); opts as request(). */
  async post(readings, opts) {
    const list = Array.isArray(readings) ? readings : [readings];
    for (let i = 0; i < list.length; i += 5000) {
      const r = await this.request("POST", "/api/v1/readings", list.slice(i, i + 5000), opts);
      if (r.status !== 201) throw new Error(`POST /api/v1/readings -> ${r.status} ${r.text.slice(0, 300)}`);
    }
  }

  /** An API token (admin request): {id, name, scope, token}. */
  async createToken(name, scope = "read") {
    const r = await this.request("POST", "/api/v1/tokens", { name, scope });
    if (r.status !== 201) throw new Error(`POST /api/v1/tokens -> ${r.status} ${r.text.slice(0, 300)}`);
    return r.json;
  }

  /** Registers a meter (admin request): {meter, device_key}. */
  async registerMeter(doc) {
    const r = await this.request("POST", "/api/v1/meters", doc);
    if (r.status !== 201) throw new Error(`POST /api/v1/meters -> ${r.status} ${r.text.slice(0, 300)}`);
    return r.json;
  }
}

/** Starts a server; the caller must stop it (use `after`). */
export async function startServer(opts) {
  return new Server(opts).start();
}

// ---------------------------------------------------------------------------
// The browser

let playwright = null;
function chromium() {
  if (!playwright) {
    const require = createRequire(path.join(WEB_SRC, "package.json"));
    playwright = require("playwright-core");
  }
  return playwright.chromium;
}

/** A fresh headless Chromium (launch() gives every run a new temporary profile). */
export async function launchBrowser() {
  check();
  const browser = await chromium().launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30000,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  return browser;
}

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 360, height: 740 };

/**
 * A page in a new context (its own storage) that records every console error
 * and page error in `page.errors`; `expectNoErrors(page)` fails on them.
 * allow: regexps for errors that are expected (a server that is down).
 */
export async function openPage(browser, { viewport = DESKTOP, colorScheme = "light", timezoneId = "Europe/Berlin", allow = [] } = {}) {
  const context = await browser.newContext({
    viewport,
    colorScheme,
    timezoneId,
    locale: "en-US",
    deviceScaleFactor: 1,
    isMobile: viewport.width < 500,
    hasTouch: viewport.width < 500,
  });
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  page.setDefaultNavigationTimeout(15000);
  page.errors = [];
  page.allow = allow;
  page.on("console", (msg) => {
    if (msg.type() === "error") page.errors.push(`console.error: ${msg.text()} (${msg.location().url})`);
  });
  page.on("pageerror", (err) => page.errors.push(`pageerror: ${err.stack || err.message}`));
  page.on("requestfailed", (req) => {
    // A failed WebSocket or fetch shows up here; the console already has it
    // when the page did not handle it. Recorded to explain failures.
    page.failedRequests = (page.failedRequests ?? []).concat(`${req.method()} ${req.url()}: ${req.failure()?.errorText}`);
  });
  return page;
}

export function unexpectedErrors(page) {
  return page.errors.filter((e) => !page.allow.some((re) => re.test(e)));
}

export function screenshotDir() {
  const d = path.join(OUTPUT, "screenshots");
  fs.mkdirSync(d, { recursive: true });
  return d;
}

// ---------------------------------------------------------------------------
// Readings

export function isoMs(ms) {
  return new Date(ms).toISOString();
}

/**
 * Readings of one meter every `everyMs` over [fromMs, toMs), with a counter
 * that integrates the power exactly. power(tMs) gives W.
 */
export function evenReadings(meterId, { fromMs, toMs, everyMs = 60000, startKwh = 1000, power = () => 500, voltage = () => 230 }) {
  const out = [];
  let e = startKwh;
  let prev = null;
  for (let t = fromMs; t < toMs; t += everyMs) {
    const p = power(t);
    if (prev !== null) e += (p * (t - prev)) / 3600e6;
    prev = t;
    const v = voltage(t);
    out.push({
      meter_id: meterId,
      ts: isoMs(t),
      voltage: round(v, 1),
      current: round(Math.abs(p) / v, 3),
      power: round(p, 1),
      energy: round(e, 6),
      frequency: 50,
      power_factor: 0.97,
    });
  }
  return out;
}

export function round(v, d) {
  const f = 10 ** d;
  return Math.round(v * f) / f;
}

export async function withTimeout(promise, ms, what) {
  let t;
  const timeout = new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(t);
  }
}

// ---------------------------------------------------------------------------
// Waiting on the page (bounded by the page's default timeout)

/** Waits until the element's data-<name> equals value (strings). */
export async function waitData(page, selector, name, value, timeout) {
  await page.waitForFunction(
    ([sel, n, v]) => document.querySelector(sel)?.dataset[n] === v,
    [selector, name, String(value)],
    { timeout },
  ).catch(async (e) => {
    const got = await page.evaluate(([sel, n]) => document.querySelector(sel)?.dataset[n], [selector, name]);
    throw new Error(`${selector} data-${name}: wanted ${JSON.stringify(String(value))}, have ${JSON.stringify(got)} (${e.message.split("\n")[0]})`);
  });
}

/** Waits until the element's text matches re. */
export async function waitText(page, selector, re, timeout) {
  await page.waitForFunction(
    ([sel, src, flags]) => new RegExp(src, flags).test(document.querySelector(sel)?.textContent ?? ""),
    [selector, re.source, re.flags],
    { timeout },
  ).catch(async (e) => {
    const got = await page.evaluate((sel) => document.querySelector(sel)?.textContent, selector);
    throw new Error(`${selector} text: wanted ${re}, have ${JSON.stringify(got)} (${e.message.split("\n")[0]})`);
  });
}

// ---------------------------------------------------------------------------
// Accessibility: axe-core (web/node_modules, a devDependency) run in the page.
// Evaluated through the DevTools protocol, which the page's CSP does not
// restrict, so the page runs under its real CSP.

let axeSource = null;
export async function axeViolations(page, { rules = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } = {}) {
  if (!axeSource) {
    const require = createRequire(path.join(WEB_SRC, "package.json"));
    axeSource = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
  }
  await page.evaluate(axeSource);
  const result = await page.evaluate(
    (tags) => window.axe.run(document, { runOnly: { type: "tag", values: tags }, resultTypes: ["violations"] }),
    rules,
  );
  return result.violations.map(
    (v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(" ") + ": " + (n.failureSummary ?? "").split("\n").slice(1, 2).join("")).join("; ")}`,
  );
}
