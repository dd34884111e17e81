// The HTTP API of docs/api.md, as the pages use it. URLs are relative to the
// page, so the dashboard also works behind a reverse proxy under a prefix.
// Every request has a deadline; failures are ApiError values with the
// server's error code when it sent one.

const TIMEOUT_MS = 15000;

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status; // 0 when the server could not be reached
    this.code = code;
  }
}

/** Absolute URL of an API path with query parameters (undefined/null skipped). */
export function apiUrl(path, params = {}) {
  const url = new URL(path.replace(/^\//, ""), document.baseURI);
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, String(v));
  }
  return url.href;
}

export async function getJSON(path, params = {}, { signal } = {}) {
  const timeout = AbortSignal.timeout(TIMEOUT_MS);
  const sig = signal ? AbortSignal.any([signal, timeout]) : timeout;
  let res;
  try {
    res = await fetch(apiUrl(path, params), { headers: { Accept: "application/json" }, signal: sig });
  } catch (e) {
    if (signal?.aborted) throw e; // the caller gave up: let it see AbortError
    throw new ApiError(0, "unreachable", timeout.aborted ? "request timed out" : "server unreachable");
  }
  let body = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON: handled below */
  }
  if (!res.ok) {
    const err = body && body.error;
    throw new ApiError(res.status, err?.code ?? "http_" + res.status, err?.message ?? res.statusText);
  }
  if (body === null) throw new ApiError(res.status, "bad_response", "response is not JSON");
  return body;
}

const enc = encodeURIComponent;

export const api = {
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

/** Epoch ms of an RFC 3339 time from the server. */
export function parseTs(text) {
  const t = Date.parse(text);
  return Number.isNaN(t) ? null : t;
}
