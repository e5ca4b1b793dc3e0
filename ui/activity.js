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

// The program that asked ("curl (pid 4242)", its path on hover) and below it the name it gave itself (the
// User-Agent); for the app's own doors, which one.
function caller(record) {
  const program = record.program;
  const who = program
    ? el("span", { title: program.path ?? program.name }, `${program.name} (pid ${program.pid})`)
    : el("span", { class: record.source === "http" || record.source === "agent" ? "warn-text" : "", title: record.caller }, record.caller);
  const named = record.client && record.source === "http" ? el("div", { class: "small muted" }, record.client) : null;
  return el("td", { class: "small" }, who, named);
}

async function load() {
  const records = await invoke("activity");
  $("activity-empty").hidden = records.length > 0;
  $("activity-rows").replaceChildren(...records.map((r) =>
    el("tr", {},
      el("td", { class: "nowrap" }, localTime(Date.parse(r.time) / 1000)),
      el("td", { class: "mono small" }, source(r)),
      el("td", {}, r.profile ?? "—"),
      caller(r),
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
