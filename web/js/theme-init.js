// Applies the saved theme before the first paint. A classic (blocking) script
// on purpose: a module would run after the page has been drawn once in the
// wrong colours. "auto" (nothing saved) follows the system setting via CSS.
(function () {
  try {
    var t = localStorage.getItem("meterhub.theme");
    if (t === "light" || t === "dark") document.documentElement.setAttribute("data-theme", t);
  } catch (e) {
    /* storage disabled: stay on auto */
  }
})();
