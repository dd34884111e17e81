// uPlot glue: charts that follow their container's size and the page theme.
//
// uPlot paints on a canvas, so colours come from CSS custom properties read
// at build time, and a theme change rebuilds the chart (cheap: the data stays).
// Times on the x axis are epoch seconds, as uPlot expects; the API's epoch
// milliseconds are converted by the callers.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { cssVar, onThemeChange } from "./theme.js";

export { uPlot };

export function palette() {
  const v = (n) => cssVar(n);
  return {
    text: v("--muted"),
    grid: v("--grid"),
    power: v("--c-power"),
    powerBand: v("--c-power-band"),
    voltage: v("--c-voltage"),
    voltageBand: v("--c-voltage-band"),
    current: v("--c-current"),
    currentBand: v("--c-current-band"),
    energy: v("--c-energy"),
    energyToday: v("--c-energy-today"),
    select: v("--select"),
  };
}

/** Axis styling shared by every chart. */
export function axis(p, extra = {}) {
  return {
    stroke: p.text,
    grid: { stroke: p.grid, width: 1 },
    ticks: { stroke: p.grid, width: 1, size: 4 },
    font: "12px system-ui, sans-serif",
    ...extra,
  };
}

/** Width of a y axis that fits its longest label (uPlot's default is fixed). */
export function fitSize(u, values, axisIdx, cycleNum) {
  const a = u.axes[axisIdx];
  if (cycleNum > 1) return a._size;
  let size = (a.ticks?.size ?? 4) + (a.gap ?? 5) + 4;
  const longest = (values ?? []).reduce((acc, v) => (v && v.length > acc.length ? v : acc), "");
  if (longest) {
    u.ctx.font = a.font[0];
    size += u.ctx.measureText(longest).width / devicePixelRatio;
  }
  return Math.ceil(size);
}

/** Tick labels with as many decimals as the tick spacing needs, and a unit. */
export function unitValues(unit, format) {
  return (u, splits, axisIdx, space, incr) => {
    const d = Math.min(3, (String(+(incr || 1).toFixed(6)).split(".")[1] ?? "").length);
    return splits.map((v) => format(v, d) + (unit ? " " + unit : ""));
  };
}

/**
 * A uPlot chart inside `container` (whose CSS gives it a height).
 * build(palette, {width, height}) returns the uPlot options.
 */
export class Chart {
  constructor(container, build, data) {
    this.container = container;
    this.build = build;
    this.data = data;
    this.u = null;
    this.create();
    this.resize = new ResizeObserver(() => this.fit());
    this.resize.observe(container);
    onThemeChange(() => this.rebuild());
  }

  size() {
    return {
      width: Math.max(100, Math.floor(this.container.clientWidth)),
      height: Math.max(80, Math.floor(this.container.clientHeight)),
    };
  }

  create() {
    const opts = this.build(palette(), this.size());
    this.u = new uPlot(opts, this.data, this.container);
  }

  rebuild() {
    this.u?.destroy();
    this.create();
  }

  fit() {
    if (!this.u) return;
    const s = this.size();
    if (s.width !== this.u.width || s.height !== this.u.height) this.u.setSize(s);
  }

  setData(data, resetScales = true) {
    this.data = data;
    this.u.setData(data, resetScales);
  }
}

/**
 * Columnar API buckets -> uPlot columns with a null row wherever consecutive
 * buckets are more than `gapMs` apart (the API omits empty buckets; a null
 * makes uPlot draw a gap instead of a line across missing data).
 * columns: arrays parallel to timesMs. Returns [xSeconds, ...columns].
 */
export function withGaps(timesMs, columns, gapMs) {
  const xs = [];
  const out = columns.map(() => []);
  for (let i = 0; i < timesMs.length; i++) {
    if (i > 0 && timesMs[i] - timesMs[i - 1] > gapMs) {
      xs.push((timesMs[i - 1] + gapMs) / 1000);
      out.forEach((c) => c.push(null));
    }
    xs.push(timesMs[i] / 1000);
    columns.forEach((c, k) => out[k].push(c[i] ?? null));
  }
  return [xs, ...out];
}
