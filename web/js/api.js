// The HTTP API of docs/api.md, as the pages use it: the one place that talks
// HTTP to the server. URLs are relative to the page, so the dashboard also
// works behind a reverse proxy under a prefix. Every request has a deadline;
// failures are ApiError values with the server's error code when it sent one.
//
// Authentication (docs/api.md, "Authentication"): the API token the user
// signed in with is kept in localStorage and sent with every request as
// `Authorization: Bearer <token>` (js/live.js sends it as a WebSocket
// subprotocol). A 401 on any request made with the stored token means the
// token is no longer accepted (revoked): the handlers registered with
// onUnauthorized() are told (js/auth.js sends the user back to sign-in).

const TIMEOUT_MS = 15000;
const TOKEN_KEY = "meterhub.token";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status; // 0 when the server could not be reached
    this.code = code;
  }
}

// ---------------------------------------------------------------------------
// The stored token

/** The API token this browser signed in with, or "" (none, or storage disabled). */
export function storedToken() {
  try {
    return localStorage.getItem(TOKEN_KEY) ?? "";
  } catch {
    return "";
  }
}

export function storeToken(token) {
  try {
    localStorage.setItem(TOKEN_KEY, token);
    return true;
  } catch {
    return false; // storage disabled: the page cannot keep a session
  }
}

export function clearToken() {
  try {
    localStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage disabled: nothing stored */
  }
}

/** True when a "storage" event is about the token (changed in another tab). */
export function isTokenChange(e) {
  return e.key === TOKEN_KEY || e.key === null;
}

const unauthorizedHandlers = new Set();

/** fn(error, token) is called when a request with the stored token gets 401. */
export function onUnauthorized(fn) {
  unauthorizedHandlers.add(fn);
}

function authHeaders(token) {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

// ---------------------------------------------------------------------------
// Requests

/** Absolute URL of an API path with query parameters (undefined/null skipped). */
export function apiUrl(path, params = {}) {
  const url = new URL(path.replace(/^\//, ""), document.baseURI);
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, String(v));
  }
  return url.href;
}

/**
 * A GET with the stored token (or `token`, e.g. one being checked at sign-in:
 * a 401 for it tells no handler). Resolves to the Response of a 2xx; throws
 * ApiError otherwise.
 */
async function send(url, { signal, token, accept = "application/json" } = {}) {
  const own = token === undefined;
  const key = own ? storedToken() : token;
  const timeout = AbortSignal.timeout(TIMEOUT_MS);
  const sig = signal ? AbortSignal.any([signal, timeout]) : timeout;
  let res;
  try {
    res = await fetch(url, { headers: { Accept: accept, ...authHeaders(key) }, signal: sig });
  } catch (e) {
    if (signal?.aborted) throw e; // the caller gave up: let it see AbortError
    throw new ApiError(0, "unreachable", timeout.aborted ? "request timed out" : "server unreachable");
  }
  if (res.ok) return res;
  let body = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON */
  }
  const err = body && body.error;
  const error = new ApiError(res.status, err?.code ?? "http_" + res.status, err?.message ?? res.statusText);
  if (res.status === 429) error.retryAfter = Number(res.headers.get("Retry-After")) || null;
  if (res.status === 401 && own) for (const fn of unauthorizedHandlers) fn(error, key);
  throw error;
}

export async function getJSON(path, params = {}, opts = {}) {
  const res = await send(apiUrl(path, params), opts);
  try {
    return await res.json();
  } catch {
    throw new ApiError(res.status, "bad_response", "response is not JSON");
  }
}

/**
 * Downloads a URL of the API as a file, with the stored token: a plain link
 * cannot send the Authorization header.
 */
export async function download(url, filename) {
  const res = await send(url, { accept: "*/*" });
  const blob = await res.blob();
  const href = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = href;
  a.download = filename;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 60000);
}

const enc = encodeURIComponent;

export const api = {
  /** Who the token (default: the stored one) is: {kind: "token"|"anonymous"|"device", …}. */
  whoami: (opts) => getJSON("api/v1/whoami", {}, opts),
  meters: (opts) => getJSON("api/v1/meters", {}, opts),
  meter: (id, opts) => getJSON(`api/v1/meters/${enc(id)}`, {}, opts),
  /** Columnar buckets; from/to epoch ms. */
  series: (id, params, opts) => getJSON(`api/v1/meters/${enc(id)}/series`, params, opts),
  seriesCsvUrl: (id, params) => apiUrl(`api/v1/meters/${enc(id)}/series`, { ...params, format: "csv" }),
  energy: (id, params, opts) => getJSON(`api/v1/meters/${enc(id)}/energy`, params, opts),
  energySummary: (params, opts) => getJSON("api/v1/energy/summary", params, opts),
};

/** The browser's IANA time zone ("Europe/Berlin"), or UTC if it has none. */
export function browserTimeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

/** Epoch ms of the local midnight that starts the day `daysBack` days before `now`'s day. */
export function localMidnight(now = Date.now(), daysBack = 0) {
  const d = new Date(now);
  return new Date(d.getFullYear(), d.getMonth(), d.getDate() - daysBack).getTime();
}

export function iso(ms) {
  return new Date(ms).toISOString();
}

/** Parses an RFC 3339 time from the server: epoch ms, or null. */
export function parseTs(text) {
  const t = Date.parse(text);
  return Number.isNaN(t) ? null : t;
}
