// Number, unit and time formatting shared by the pages. Every function takes
// a raw value (possibly null/undefined) and returns display text; "–" stands
// for "no value". Formats follow the browser's locale.

const nf = new Map();
function numberFormat(min, max) {
  const key = `${min}:${max}`;
  let f = nf.get(key);
  if (!f) {
    f = new Intl.NumberFormat(undefined, { minimumFractionDigits: min, maximumFractionDigits: max });
    nf.set(key, f);
  }
  return f;
}

export const NONE = "–";

export function isNum(v) {
  return typeof v === "number" && Number.isFinite(v);
}

export function num(v, min = 0, max = min) {
  return isNum(v) ? numberFormat(min, max).format(v) : NONE;
}

/** Power in W below 10 kW, kW above: returns [value text, unit]. */
export function power(w) {
  if (!isNum(w)) return [NONE, "W"];
  if (Math.abs(w) >= 10000) return [num(w / 1000, 2), "kW"];
  return [num(w, Math.abs(w) >= 1000 ? 0 : 1), "W"];
}

export function volts(v) {
  return num(v, 1);
}

export function amps(a) {
  return num(a, 2);
}

/** kWh with 3 decimals below 10, 2 below 1000, none above. */
export function kwh(v) {
  if (!isNum(v)) return NONE;
  const a = Math.abs(v);
  return a < 10 ? num(v, 3) : a < 1000 ? num(v, 2) : num(v, 0);
}

const currencyFormats = new Map();
export function money(v, currency) {
  if (!isNum(v)) return NONE;
  if (!currency) return num(v, 2);
  let f = currencyFormats.get(currency);
  if (!f) {
    try {
      f = new Intl.NumberFormat(undefined, { style: "currency", currency });
    } catch {
      f = { format: (x) => `${num(x, 2)} ${currency}` };
    }
    currencyFormats.set(currency, f);
  }
  return f.format(v);
}

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto", style: "short" });
/** "5 sec. ago", "3 hr. ago" for an epoch-ms time; "" when unknown. */
export function ago(ms, now = Date.now()) {
  if (!isNum(ms)) return "";
  const s = Math.round((ms - now) / 1000);
  const a = Math.abs(s);
  if (a < 60) return rtf.format(s, "second");
  if (a < 3600) return rtf.format(Math.round(s / 60), "minute");
  if (a < 86400) return rtf.format(Math.round(s / 3600), "hour");
  return rtf.format(Math.round(s / 86400), "day");
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
export function dateTimeText(ms) {
  return isNum(ms) ? dateTime.format(ms) : NONE;
}

const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short" });
export function dayText(ms) {
  return isNum(ms) ? dayFmt.format(ms) : NONE;
}

/** Value for an <input type="datetime-local"> (local time, minutes). */
export function toLocalInput(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** Parses an <input type="datetime-local"> value as local time; NaN if empty. */
export function fromLocalInput(text) {
  if (!text) return NaN;
  return new Date(text).getTime();
}
