// One WebSocket to the server's multiplexed stream (/ws), kept open for the
// life of the page.
//
// Contract for callers:
// - subscribe("*") or subscribe([ids]) may be called at any time; the client
//   remembers the subscription and sends it again after every reconnect, so the
//   server answers each (re)connect with a fresh "snapshot": that is the resync.
// - Events (EventTarget, `detail` carries the server message):
//     "state"    detail: "connecting" | "open" | "reconnecting"
//     "snapshot" "reading" "meter" "status" "error"  — one per server message
//     "resync"   after the first snapshot of every connection but the first:
//                data fetched over HTTP (charts, kWh) should be reloaded.
//     "failed"   a connection attempt ended before the socket opened. A
//                browser does not tell why: the server may be down, or it
//                refused the upgrade (401: the token was revoked); js/auth.js
//                asks /api/v1/whoami to tell the two apart.
// - Authentication: browsers cannot set headers on a WebSocket, so the stored
//   API token goes as a subprotocol, ["meterhub", "bearer.<token>"]; the
//   server answers "meterhub" and never echoes the token. Without a token
//   (a server with --public-read) only "meterhub" is offered. The token is
//   read at every connect, so a new sign-in applies from the next one.
// - A lost connection is retried with exponential backoff (0.5 s doubling to
//   30 s) and jitter (each delay is drawn from [d/2, d]) so that a restarted
//   server is not hit by every dashboard at the same instant. The backoff is
//   reset only once a connection has delivered its snapshot: a server that
//   accepts and then drops connections does not cause a tight loop.
// - When the page comes back to the foreground or the network returns, a
//   pending retry happens at once.

import { storedToken } from "./api.js";

const BASE_DELAY_MS = 500;
const MAX_DELAY_MS = 30000;
const CONNECT_TIMEOUT_MS = 10000;

/** The subprotocols offered: the server picks "meterhub"; "bearer.<token>" carries the key. */
export function wsProtocols(token = storedToken()) {
  return token ? ["meterhub", "bearer." + token] : ["meterhub"];
}

export function wsUrl(path = "ws") {
  const url = new URL(path, document.baseURI);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

export class LiveClient extends EventTarget {
  constructor({ url = wsUrl(), baseDelay = BASE_DELAY_MS, maxDelay = MAX_DELAY_MS } = {}) {
    super();
    this.url = url;
    this.baseDelay = baseDelay;
    this.maxDelay = maxDelay;
    this.all = false;
    this.ids = new Set();
    this.ws = null;
    this.state = "idle";
    this.attempt = 0;
    this.timer = 0;
    this.connectTimer = 0;
    this.connections = 0; // connections that delivered a snapshot
    this.awaitingSnapshot = false;
    this.stopped = false;
    this.retryNow = () => {
      if (this.timer && !document.hidden) {
        clearTimeout(this.timer);
        this.timer = 0;
        this.connect();
      }
    };
    document.addEventListener("visibilitychange", this.retryNow);
    window.addEventListener("online", this.retryNow);
    // Close cleanly when the page goes away, so the server sees a close frame;
    // a page restored from the back/forward cache connects (and resyncs) again.
    window.addEventListener("pagehide", () => this.stop());
    window.addEventListener("pageshow", (e) => {
      if (e.persisted) this.start();
    });
  }

  start() {
    this.stopped = false;
    if (!this.ws && !this.timer) this.connect();
    return this;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.connectTimer);
    this.timer = 0;
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState === WebSocket.OPEN) ws.close(1000, "page closed");
  }

  /** ids: "*" for every meter (including ones created later), or an array of meter ids. */
  subscribe(ids) {
    if (ids === "*") {
      this.all = true;
    } else {
      ids = ids.filter((id) => !this.ids.has(id));
      if (ids.length === 0) return;
      ids.forEach((id) => this.ids.add(id));
    }
    this.send({ subscribe: ids });
  }

  unsubscribe(ids) {
    if (ids === "*") this.all = false;
    else ids.forEach((id) => this.ids.delete(id));
    this.send({ unsubscribe: ids });
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: state }));
  }

  connect() {
    if (this.stopped) return;
    this.setState(this.connections === 0 && this.attempt === 0 ? "connecting" : "reconnecting");
    let ws;
    try {
      ws = new WebSocket(this.url, wsProtocols());
    } catch {
      // A token that is not a valid subprotocol (SyntaxError): no connection
      // can work with it; whoever listens checks the token.
      this.dispatchEvent(new CustomEvent("failed"));
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    this.awaitingSnapshot = false;
    let opened = false;
    // A connect that hangs (a half-open network) is given up after a while.
    this.connectTimer = setTimeout(() => {
      if (this.ws === ws && ws.readyState !== WebSocket.OPEN) this.drop(ws);
    }, CONNECT_TIMEOUT_MS);

    ws.addEventListener("open", () => {
      if (this.ws !== ws) return;
      clearTimeout(this.connectTimer);
      opened = true;
      this.awaitingSnapshot = true;
      const subs = [];
      if (this.all) subs.push({ subscribe: "*" });
      if (this.ids.size) subs.push({ subscribe: [...this.ids] });
      subs.forEach((m) => ws.send(JSON.stringify(m)));
      if (subs.length === 0) this.onConnected();
    });
    ws.addEventListener("message", (e) => {
      if (this.ws !== ws) return;
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch {
        return;
      }
      if (!msg || typeof msg.type !== "string") return;
      this.dispatchEvent(new CustomEvent(msg.type, { detail: msg }));
      if (msg.type === "snapshot" && this.awaitingSnapshot) this.onConnected();
    });
    ws.addEventListener("close", () => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearTimeout(this.connectTimer);
      if (!opened) this.dispatchEvent(new CustomEvent("failed"));
      this.scheduleRetry();
    });
  }

  onConnected() {
    this.awaitingSnapshot = false;
    this.attempt = 0;
    this.connections += 1;
    this.setState("open");
    if (this.connections > 1) this.dispatchEvent(new CustomEvent("resync"));
  }

  /** Abandons a socket that is stuck connecting (close() alone would wait for it). */
  drop(ws) {
    this.ws = null;
    try {
      ws.close();
    } catch {
      /* already closing */
    }
    this.scheduleRetry();
  }

  scheduleRetry() {
    if (this.stopped) return;
    this.setState("reconnecting");
    const d = Math.min(this.maxDelay, this.baseDelay * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    const delay = d / 2 + Math.random() * (d / 2);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = 0;
      this.connect();
    }, delay);
  }
}

/** Binds a status element to the client: text and data-state for styling. */
export function showConnection(client, el) {
  const texts = { idle: "", connecting: "connecting…", open: "live", reconnecting: "reconnecting…" };
  const update = () => {
    el.textContent = texts[client.state] ?? client.state;
    el.dataset.state = client.state;
  };
  client.addEventListener("state", update);
  update();
}
