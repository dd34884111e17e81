// Theme: "auto" (follow the system), "light" or "dark", saved per browser.
// js/theme-init.js applies the saved choice before the first paint; this
// module runs the toggle button and tells the charts (which paint on a canvas
// and cannot use CSS colours directly) when the colours change.

const KEY = "meterhub.theme";
const ORDER = ["auto", "light", "dark"];
const LABELS = { auto: "Theme: auto", light: "Theme: light", dark: "Theme: dark" };
const ICONS = { auto: "◐", light: "☀", dark: "☾" };

function saved() {
  try {
    const t = localStorage.getItem(KEY);
    return t === "light" || t === "dark" ? t : "auto";
  } catch {
    return "auto";
  }
}

function apply(theme) {
  if (theme === "auto") document.documentElement.removeAttribute("data-theme");
  else document.documentElement.setAttribute("data-theme", theme);
  try {
    if (theme === "auto") localStorage.removeItem(KEY);
    else localStorage.setItem(KEY, theme);
  } catch {
    /* storage disabled: the choice lasts for this page only */
  }
}

/** Calls fn() whenever the effective colours may have changed. */
export function onThemeChange(fn) {
  document.addEventListener("meterhub:theme", fn);
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", fn);
}

export function initThemeButton(button) {
  let theme = saved();
  const render = () => {
    button.textContent = ICONS[theme];
    button.setAttribute("aria-label", LABELS[theme]);
    button.title = LABELS[theme] + " (click to change)";
  };
  button.addEventListener("click", () => {
    theme = ORDER[(ORDER.indexOf(theme) + 1) % ORDER.length];
    apply(theme);
    render();
    document.dispatchEvent(new CustomEvent("meterhub:theme"));
  });
  render();
}

/** The value of a CSS custom property on :root, e.g. cssVar("--power"). */
export function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}
