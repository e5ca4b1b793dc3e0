// Activity: every token the app handed out (API, tray, this window, the CLI), newest first; never the token itself.
// Polled while the view is open, so it follows without a reload.
import { $, el, invoke, localTime } from "./dom.js";
import { onView } from "./store.js";

let timer = null;

function source(record) {
  if (record.method === "TRAY") return "tray";
  if (record.method === "WINDOW") return "window";
  // The CLI, served over the agent socket: "agent: token" reads as the command the user typed.
  if (record.method === "AGENT") return record.route.replace(/^agent: /, "kvproxy ");
  return `${record.method} ${record.route}`;
}

async function load() {
  const records = await invoke("activity");
  $("activity-empty").hidden = records.length > 0;
  $("activity-rows").replaceChildren(...records.map((r) =>
    el("tr", {},
      el("td", { class: "nowrap" }, localTime(Date.parse(r.time) / 1000)),
      el("td", { class: "mono small" }, source(r)),
      el("td", {}, r.profile ?? "—"),
      el("td", { class: "small muted" }, r.user_agent ?? "—"),
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
