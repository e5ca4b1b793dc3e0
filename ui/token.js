// Token: get one for the selected profile and read it: claims first (aud, roles, appid, …), a live
// countdown to expiry, and for a refusal what Microsoft support asks for.
import { $, countdown, el, flash, invoke, localTime, showFieldErrors } from "./dom.js";
import { fillProfileSelect, onStatus, select } from "./store.js";

const form = $("token-form");
let current = null;
let timer = null;

$("t-profile").addEventListener("change", (event) => select(event.target.value));

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("t-profile").value;
  if (!name) return;
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  showFieldErrors(form, []);
  try {
    const token = await invoke("get_token", {
      name,
      scope: $("t-scope").value.trim() || null,
      skipCache: $("t-skip").checked,
    });
    showToken(token);
  } catch (error) {
    if (error.fields?.length) {
      showFieldErrors(form, error.fields)?.focus();
    } else {
      showError(error);
    }
  } finally {
    button.disabled = false;
  }
});

function showToken(token) {
  current = token;
  $("token-empty").hidden = true;
  $("token-error").hidden = true;
  $("token-result").hidden = false;
  $("token-source").textContent = token.from_cache ? "from the cache" : "new from Entra ID";
  $("token-source").className = `badge ${token.from_cache ? "" : "fresh"}`;
  $("token-demo").hidden = !token.demo;
  $("token-text").textContent = token.access_token;
  $("claims").replaceChildren(...token.claims.map(row));
  $("header").replaceChildren(...token.header.map(row));
  tick();
  clearInterval(timer);
  timer = setInterval(tick, 1000);
}

function row(r) {
  const value = r.time ? [el("span", { class: "mono" }, r.value), el("span", { class: "muted" }, ` ${localTime(r.time)}`)]
    : [el("span", { class: "mono" }, r.value)];
  return el("tr", {},
    el("th", { scope: "row" }, el("span", { class: "mono" }, r.name)),
    el("td", {}, ...value, r.meaning ? el("div", { class: "muted small" }, r.meaning) : null));
}

function tick() {
  if (!current) return;
  const left = current.expires_on - Date.now() / 1000;
  const text = $("countdown");
  text.textContent = countdown(left);
  text.classList.toggle("warn", left < 300);
}

function showError(error) {
  current = null;
  clearInterval(timer);
  $("token-empty").hidden = true;
  $("token-result").hidden = true;
  const card = $("token-error");
  card.hidden = false;
  const support = error.support;
  const ids = support ? [
    support.aadsts ? ["Error code", `AADSTS${support.aadsts}`] : null,
    support.trace_id ? ["Trace ID", support.trace_id] : null,
    support.correlation_id ? ["Correlation ID", support.correlation_id] : null,
    ["Timestamp", new Date().toISOString()],
  ].filter(Boolean) : [];
  card.replaceChildren(
    el("h3", {}, error.summary ?? "No token"),
    el("p", {}, error.message ?? String(error)),
    error.hint ? el("p", { class: "hint-box" }, el("strong", {}, "What to do: "), error.hint) : null,
    ids.length ? el("table", { class: "kv" }, el("tbody", {}, ...ids.map(([k, v]) =>
      el("tr", {}, el("th", { scope: "row" }, k), el("td", { class: "mono" }, v))))) : null,
    ids.length ? el("div", { class: "actions" }, el("button", {
      type: "button",
      onclick: async (event) => {
        await invoke("copy_text", { text: ids.map(([k, v]) => `${k}: ${v}`).join("\n") });
        flash(event.target, "Copied");
      },
    }, "Copy ids")) : null);
}

$("copy-token").addEventListener("click", async (event) => {
  if (!current) return;
  try {
    await invoke("copy_secret", { secret: current.access_token });
    flash(event.target, "Copied");
  } catch (error) {
    flash(event.target, "Clipboard unavailable");
  }
});

onStatus((status) => {
  fillProfileSelect($("t-profile"), status);
  form.querySelector('button[type="submit"]').disabled = status.profiles.length === 0;
});
