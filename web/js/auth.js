// Sign-in for the pages (docs/api.md, "Authentication"): which key the
// dashboard uses, the sign-in screen, and the header's account controls.
//
// gate(start) runs a page:
// - on load it asks GET /api/v1/whoami with the stored token (if any);
//   - an API token: the page starts; the header shows the token's name and
//     scope and a "Sign out" button;
//   - anonymous (the server runs with --public-read, no token stored): the
//     page starts; the header offers "Sign in";
//   - 401: the sign-in screen (#signin) replaces the page (#main); a stored
//     token that is refused is forgotten first;
//   - the server cannot be reached: the page starts anyway (it shows
//     "reconnecting…" and catches up), and whoami is asked again once the
//     WebSocket opens.
// - The sign-in form checks a pasted token with whoami before keeping it in
//   localStorage: a 401 or a device key (mhd_…) is explained and nothing is
//   stored.
// - Later, a 401 on any API call made with the stored token, or a WebSocket
//   that cannot connect while whoami says 401, means the token was revoked:
//   it is dropped and the page reloads into the sign-in screen with a message
//   (a reload also drops everything the page has shown).
// - Sign out forgets the token and reloads the same way.
//
// Each page (index.html, meter.html) has an empty <main id="signin"> (the
// form is rendered into it from SIGNIN_FORM below, so it is written once) and
// the header's #who and #auth-btn.

import { api, clearToken, isTokenChange, onUnauthorized, storedToken, storeToken } from "./api.js";

const REASON_KEY = "meterhub.signin-reason";
// After failed WebSocket connects: at most one whoami per this while the
// server answers (while it is down, one per reconnect attempt, which back off).
const VERIFY_EVERY_MS = 5000;

const REASONS = {
  revoked: "Your API token is no longer accepted (it may have been revoked). Sign in with a valid token.",
  "signed-out": "You have signed out.",
  required: "The server now needs an API token to show the meters.",
};

const $ = (id) => document.getElementById(id);

// Static markup (no data in it): #signin-form, #token, #signin-error,
// #signin-reason, #signin-skip, #signin-submit.
const SIGNIN_FORM = `
<form id="signin-form" class="signin-card" novalidate aria-labelledby="signin-h">
  <h1 id="signin-h">Sign in</h1>
  <p id="signin-reason" class="notice" role="status" hidden></p>
  <p id="signin-help">Paste an API token (read or admin). Create one with
    <code>meterhub token create --scope read --name dashboard</code></p>
  <label for="token">API token</label>
  <input id="token" name="token" type="password" autocomplete="off" autocapitalize="off" spellcheck="false"
         placeholder="mht_…" aria-describedby="signin-help signin-error">
  <p id="signin-error" class="signin-error" role="alert"></p>
  <div class="signin-actions">
    <button id="signin-submit" class="primary" type="submit">Sign in</button>
    <button id="signin-skip" type="button" hidden>Continue without signing in</button>
  </div>
  <p class="signin-note muted">The token stays in this browser until you sign out.</p>
</form>`;

function renderSignin() {
  const main = $("signin");
  if (main && !main.firstElementChild) main.innerHTML = SIGNIN_FORM;
}

/** {kind: "token", id, name, scope} | {kind: "anonymous"} | null (not known yet) */
let session = null;
let started = false;
let startPage = () => {};
let leaving = false;
let lastVerify = 0;
let pageTitle = "";

// ---------------------------------------------------------------------------
// Screens

function els() {
  renderSignin();
  return {
    main: $("main"),
    skipLink: document.querySelector(".skip"),
    signin: $("signin"),
    form: $("signin-form"),
    token: $("token"),
    error: $("signin-error"),
    reason: $("signin-reason"),
    skip: $("signin-skip"),
    submit: $("signin-submit"),
    who: $("who"),
    button: $("auth-btn"),
  };
}

/** Shows the sign-in screen instead of the page. reason: a key of REASONS or text. */
function showSignin({ reason = "", publicRead = false } = {}) {
  const e = els();
  e.main.hidden = true;
  if (e.skipLink) e.skipLink.hidden = true;
  e.signin.hidden = false;
  e.button.hidden = true;
  e.who.hidden = true;
  const text = REASONS[reason] ?? reason;
  e.reason.textContent = text;
  e.reason.hidden = !text;
  e.reason.dataset.reason = reason;
  e.skip.hidden = !publicRead;
  setError("");
  if (!e.signin.dataset.shown) pageTitle = document.title;
  e.signin.dataset.shown = "1";
  document.title = "Sign in · meterhub";
  e.token.focus();
}

/** focus: move the focus into the page (after a sign-in through the form). */
function showPage({ focus = false } = {}) {
  const e = els();
  e.signin.hidden = true;
  e.main.hidden = false;
  if (e.skipLink) e.skipLink.hidden = false;
  e.token.value = "";
  delete e.signin.dataset.shown;
  if (pageTitle) document.title = pageTitle;
  renderHeader();
  if (focus) e.main.focus({ preventScroll: true });
  if (!started) {
    started = true;
    startPage();
  }
}

function renderHeader() {
  const { who, button } = els();
  const s = session;
  if (s?.kind === "token") {
    who.textContent = `${s.name || s.id} · ${s.scope}`;
    who.title = `Signed in with the API token “${s.name}” (id ${s.id}, scope ${s.scope})`;
    who.hidden = false;
    button.textContent = "Sign out";
    button.dataset.action = "sign-out";
    button.hidden = false;
  } else if (s?.kind === "anonymous") {
    who.hidden = true;
    button.textContent = "Sign in";
    button.dataset.action = "sign-in";
    button.hidden = false;
  } else {
    who.hidden = true;
    button.hidden = true;
  }
}

function setError(text, kind = "") {
  const { token, error } = els();
  error.textContent = text;
  error.dataset.kind = kind;
  if (text) token.setAttribute("aria-invalid", "true");
  else token.removeAttribute("aria-invalid");
}

/** Leaves the page for the sign-in screen, dropping the stored token and all that was shown. */
function leave(reason) {
  if (leaving) return;
  leaving = true;
  clearToken();
  try {
    sessionStorage.setItem(REASON_KEY, reason);
  } catch {
    /* no storage: no message after the reload */
  }
  location.reload();
}

function takeReason() {
  try {
    const r = sessionStorage.getItem(REASON_KEY) ?? "";
    sessionStorage.removeItem(REASON_KEY);
    return r;
  } catch {
    return "";
  }
}

// ---------------------------------------------------------------------------
// Checking tokens

/** whoami for `token` ("" for none): {ok, who} or {ok: false, error}. Tells no 401 handler. */
async function ask(token) {
  try {
    return { ok: true, who: await api.whoami({ token }) };
  } catch (error) {
    return { ok: false, error };
  }
}

const DEVICE_KEY = "This is a device key; use an API token. Device keys (mhd_…) can only send readings; API tokens start with mht_.";

async function onSubmit(ev) {
  ev.preventDefault();
  const e = els();
  const token = e.token.value.trim();
  if (!token) {
    setError("Paste an API token first.", "empty");
    e.token.focus();
    return;
  }
  if (!/^[\x21-\x7e]+$/.test(token)) {
    setError("That is not an API token: tokens have no spaces or special characters.", "malformed");
    e.token.focus();
    return;
  }
  e.submit.disabled = true;
  e.form.setAttribute("aria-busy", "true");
  setError("");
  const r = await ask(token);
  e.submit.disabled = false;
  e.form.removeAttribute("aria-busy");
  if (r.ok && r.who.kind === "token") {
    if (!storeToken(token)) {
      setError("This browser does not let the page store the token (storage is disabled).", "storage");
      return;
    }
    session = r.who;
    showPage({ focus: true });
    return;
  }
  let msg;
  let kind = "rejected";
  if (r.ok && r.who.kind === "device") {
    msg = DEVICE_KEY;
    kind = "device";
  } else if (r.ok) {
    msg = "The server did not recognise this as an API token.";
  } else if (r.error.status === 403) {
    msg = DEVICE_KEY;
    kind = "device";
  } else if (r.error.status === 401) {
    msg = `This token was not accepted: it is unknown, revoked or mistyped. (${r.error.message})`;
  } else if (r.error.status === 429) {
    msg = `Too many attempts; try again in ${r.error.retryAfter ?? "a few"} seconds.`;
    kind = "rate-limited";
  } else if (r.error.status === 0) {
    msg = "The server cannot be reached. Try again in a moment.";
    kind = "unreachable";
  } else {
    msg = `The server could not check the token: ${r.error.message}.`;
    kind = "server";
  }
  setError(msg, kind);
  e.token.focus();
  e.token.select();
}

/**
 * Asks whoami with the stored token: fills in the header, or (401) sends the
 * user to sign-in. Called when a WebSocket cannot connect and when the session
 * is not known yet.
 */
export async function verify() {
  if (leaving || !started) return;
  lastVerify = Date.now();
  const r = await ask(undefined); // undefined: the stored token, and its 401 is handled
  if (!r.ok && r.error.status === 0) lastVerify = 0; // the server is down: ask again at the next failure
  if (r.ok && (r.who.kind === "token" || r.who.kind === "anonymous")) {
    session = r.who;
    renderHeader();
  }
}

/** Lets a page's LiveClient tell when its token may have been revoked. */
export function watchLive(client) {
  client.addEventListener("failed", () => {
    if (Date.now() - lastVerify >= VERIFY_EVERY_MS) verify();
  });
  client.addEventListener("state", () => {
    if (client.state === "open" && !session) verify();
  });
}

// ---------------------------------------------------------------------------
// The gate

/** Runs start() once the page may load data (see the top of this file). */
export async function gate(start) {
  startPage = start;
  const e = els();
  e.form.addEventListener("submit", onSubmit);
  e.skip.addEventListener("click", () => showPage({ focus: true }));
  e.button.addEventListener("click", () => {
    if (e.button.dataset.action === "sign-out") leave("signed-out");
    else showSignin({ publicRead: true });
  });
  // A 401 for the stored token: revoked (or the server's database changed).
  // Without a token: the server no longer runs with --public-read.
  onUnauthorized((err, token) => {
    if (token !== storedToken()) return; // already replaced (another tab signed in)
    leave(token ? "revoked" : "required");
  });
  // Signed in or out in another tab: follow it.
  window.addEventListener("storage", (ev) => {
    if (isTokenChange(ev) && !leaving) location.reload();
  });

  const reason = takeReason();
  const token = storedToken();
  let r = await ask(token);
  if (!r.ok && token && (r.error.status === 401 || r.error.status === 403)) {
    // The saved token is refused: forget it, and learn whether the server
    // can be read without one.
    clearToken();
    const anon = await ask("");
    showSignin({ reason: "revoked", publicRead: anon.ok && anon.who.kind === "anonymous" });
    return;
  }
  if (r.ok && r.who.kind === "device") {
    clearToken(); // never stored by this page, but refuse it all the same
    r = await ask("");
  }
  if (r.ok && (r.who.kind === "token" || r.who.kind === "anonymous")) {
    session = r.who;
    // A revoked token (or a refused anonymous request) is explained on the
    // sign-in screen, also where the page can be read without a token: the
    // user chooses "Continue without signing in" (never an automatic
    // restart, which could end in a reload loop).
    if (reason && reason !== "signed-out" && r.who.kind === "anonymous") showSignin({ reason, publicRead: true });
    else showPage();
    return;
  }
  if (!r.ok && r.error.status === 401) {
    showSignin({ reason });
    return;
  }
  // Unreachable or a server error: run the page; verify() fills in the
  // header (or asks for a token) once the server answers.
  showPage();
}
