// Active alerts on the dashboard (docs/alerts.md): the list comes from
// GET /api/v1/alerts?active=true and is kept current by the "alert" messages
// of the multiplexed /ws (raised: added, cleared: removed). After a reconnect
// ("resync") the list is fetched again, so nothing missed while the socket
// was down stays on screen or stays missing.
//
// watchAlerts(live, box, meterId?) fills `box` (a <section> holding an <h2>
// and a <ul>): hidden while there is no active alert. With meterId only that
// meter's alerts are shown (the meter page); without, every meter's, each
// linking to its meter page (the overview).

import { getJSON, parseTs } from "./api.js";
import { dateTimeText } from "./format.js";

const LABELS = {
  over_voltage: "Over voltage",
  under_voltage: "Under voltage",
  over_current: "Over current",
  over_power: "Over power",
  power_factor_below: "Low power factor",
  frequency_out_of_band: "Frequency out of band",
  offline: "Offline",
};

export function kindLabel(kind) {
  return LABELS[kind] ?? kind;
}

export function watchAlerts(live, box, meterId = null) {
  const list = box.querySelector("ul");
  const active = new Map(); // id -> alert
  let generation = 0;

  function render() {
    const items = [...active.values()].sort((a, b) => b.id - a.id);
    list.replaceChildren(
      ...items.map((a) => {
        const li = document.createElement("li");
        li.className = "alert-item";
        li.dataset.alertId = String(a.id);
        li.dataset.kind = a.kind;
        li.dataset.meter = a.meter_id;
        const what = document.createElement("strong");
        what.textContent = kindLabel(a.kind);
        li.append(what);
        if (!meterId) {
          li.append(" · ");
          const link = document.createElement("a");
          link.href = `meter.html?id=${encodeURIComponent(a.meter_id)}`;
          link.textContent = a.meter_id;
          li.append(link);
        }
        const msg = document.createElement("span");
        msg.className = "alert-msg";
        msg.textContent = " " + a.message;
        li.append(msg);
        const ts = parseTs(a.raised_at);
        if (ts !== null) {
          const t = document.createElement("time");
          t.className = "muted";
          t.dateTime = a.raised_at;
          t.textContent = " since " + dateTimeText(ts);
          li.append(t);
        }
        return li;
      }),
    );
    box.hidden = items.length === 0;
  }

  async function load() {
    const mine = ++generation;
    // Every meter's active alerts, filtered here: `meter=` would be a 404 on
    // the page of a meter that does not exist yet (it waits for its first reading).
    const params = { active: "true", limit: "1000" };
    try {
      const doc = await getJSON("api/v1/alerts", params);
      if (mine !== generation) return; // a newer load is on its way
      active.clear();
      for (const a of doc.alerts ?? []) if (!meterId || a.meter_id === meterId) active.set(a.id, a);
      render();
    } catch (e) {
      console.warn("meterhub: alerts unavailable:", e.message);
    }
  }

  live.addEventListener("alert", (e) => {
    const a = e.detail.alert;
    if (!a || (meterId && a.meter_id !== meterId)) return;
    if (e.detail.event === "raised" && a.active) active.set(a.id, a);
    else active.delete(a.id);
    render();
  });
  live.addEventListener("resync", load);
  load();
}
