// Activity: every token the app handed out (API, tray, this window, the CLI), newest first; never the token itself.
// Polled while the view is open, so it follows without a reload.
import { $, el, invoke, localTime } from "./dom.js";
import { onView } from "./store.js";

let timer = null;

// The door and what was asked there: "GET /msi/{profile}/token", "kvproxy token" (the CLI over the agent
// socket), "tray · Copy token", "window · Get token".
function source(record) {
  if (record.source === "http" || record.source === "agent") return record.action;
  return `${record.source} · ${record.action}`;
}

async function load() {
  const records = await invoke("activity");
  $("activity-empty").hidden = records.length > 0;
  $("activity-rows").replaceChildren(...records.map((r) =>
    el("tr", {},
      el("td", { class: "nowrap" }, localTime(Date.parse(r.time) / 1000)),
      el("td", { class: "mono small" }, source(r)),
      el("td", {}, r.profile ?? "—"),
      el("td", { class: "small muted" }, r.client ?? "—"),
      el("td", {}, el("span", { class: `status s${String(r.status)[0]}` }, String(r.status))),
      el("td", { class: "num" }, `${r.duration_ms} ms`))));
}

onView((view) => {
  clearInterval(timer);
  if (view === "activity") {
    load();
    timer = setInterval(load, 1000);
  }
});
