// The window: navigation, the API status in the header, notices, and the views (one module each).
import { $, el, invoke, listen } from "./dom.js";
import { onStatus, onView, refresh, showView, store } from "./store.js";
import "./profiles.js";
import "./token.js";
import "./keyinfo.js";
import "./activity.js";
import "./settings.js";
import "./question.js";

const views = ["profiles", "token", "keyinfo", "activity", "settings"];

for (const button of document.querySelectorAll(".nav button")) {
  button.addEventListener("click", () => showView(button.dataset.view));
}

// Arrow keys move along the navigation, as in a tab list.
document.querySelector(".nav").addEventListener("keydown", (event) => {
  const buttons = [...document.querySelectorAll(".nav button")];
  const at = buttons.indexOf(document.activeElement);
  if (at < 0) return;
  const step = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1 }[event.key];
  if (!step) return;
  event.preventDefault();
  const next = buttons[(at + step + buttons.length) % buttons.length];
  next.focus();
  next.click();
});

onView((view) => {
  for (const name of views) $(`view-${name}`).hidden = name !== view;
  for (const button of document.querySelectorAll(".nav button")) {
    if (button.dataset.view === view) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
});

// What Microsoft support asks for when Entra refused: shown with the notice, selectable for a ticket.
function supportLine(support) {
  if (!support) return null;
  const ids = [["AADSTS", support.aadsts], ["Trace ID", support.trace_id], ["Correlation ID", support.correlation_id]]
    .filter(([, value]) => value != null);
  return ids.length ? el("p", { class: "small mono" }, ids.map(([k, v]) => `${k}: ${v}`).join(" · ")) : null;
}

onStatus((status) => {
  const api = $("api");
  api.replaceChildren(
    el("span", { class: `dot ${status.api.running ? "on" : "off"}`, "aria-hidden": "true" }),
    el("span", {}, status.api.running ? `API on ${status.api.url}` : `API paused · port ${status.api.port}`),
  );
  $("notices").replaceChildren(...status.notices.map((n) =>
    el("div", { class: `banner ${n.level}` },
      el("div", { class: "banner-text" }, el("strong", {}, n.title), el("p", {}, n.detail),
        n.hint ? el("p", { class: "hint-box" }, el("strong", {}, "What to do: "), n.hint) : null,
        supportLine(n.support)),
      el("button", { type: "button", class: "link", onclick: () => invoke("dismiss", { id: n.id }) }, "Dismiss"))));
});

listen("kvproxy://changed", refresh);
await refresh();
// Two frames later the first view has been painted: the window process logs it (start-up is measured).
requestAnimationFrame(() => requestAnimationFrame(() => invoke("painted")));
showView(store.status.profiles.length ? store.view : "profiles");
