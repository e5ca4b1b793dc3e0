// Key info of the selected profile's certificate: what the app signs with and what the Azure portal shows.
import { $, el, invoke, localTime } from "./dom.js";
import { fillProfileSelect, onStatus, onView, select, store } from "./store.js";

let shownFor = null;

$("k-profile").addEventListener("change", (event) => {
  select(event.target.value);
  load(false);
});
$("refresh-key").addEventListener("click", () => load(true));

async function load(refresh) {
  const name = $("k-profile").value;
  if (!name) return;
  const button = $("refresh-key");
  button.disabled = true;
  try {
    const info = await invoke("key_info", { name, refresh });
    shownFor = name;
    show(info, refresh);
  } catch (error) {
    $("key-result").hidden = true;
    $("key-warning").hidden = true;
    const card = $("key-error");
    card.hidden = false;
    card.replaceChildren(el("h3", {}, error.summary ?? "No key info"), el("p", {}, error.message ?? String(error)),
      error.hint ? el("p", { class: "hint-box" }, el("strong", {}, "What to do: "), error.hint) : null);
  } finally {
    button.disabled = false;
  }
}

function show(info, refreshed) {
  $("key-error").hidden = true;
  $("key-result").hidden = false;
  const epoch = (text) => Date.parse(text) / 1000;
  const rows = [
    ["Key id", info.key_id, "the versioned key the app signs with"],
    ["Certificate", `${info.certificate} (version ${info.certificate_version})`, ""],
    ["Subject", info.subject, ""],
    ["SHA-1 thumbprint", info.sha1_hex, "as the Azure portal shows it (app registration → Certificates & secrets)"],
    ["x5t", info.x5t, "base64url SHA-1, in RS256 assertions"],
    ["x5t#S256", info.x5t_s256, "base64url SHA-256, in PS256 assertions"],
    ["Valid from", localTime(epoch(info.not_before)), ""],
    ["Expires", `${localTime(epoch(info.expires))} (${info.days_left} days left)`, ""],
  ];
  $("key-rows").replaceChildren(...rows.map(([name, value, meaning]) =>
    el("tr", {}, el("th", { scope: "row" }, name),
      el("td", {}, el("span", { class: "mono" }, value), meaning ? el("div", { class: "muted small" }, meaning) : null))));
  const warning = $("key-warning");
  warning.hidden = !info.expires_soon;
  warning.textContent = info.days_left < 0
    ? `This certificate has expired: Entra ID refuses its assertions. Renew it in Key Vault and upload the new one to the app registration; Check in Profiles (or kvproxy doctor ${info.profile}) confirms it works.`
    : `This certificate expires in ${info.days_left} days. Renew it in Key Vault and upload the new one to the app registration before then; Check in Profiles (or kvproxy doctor ${info.profile}) confirms it works.`;
  $("key-origin").textContent = refreshed ? "Read from Key Vault just now." : "From the cache (memory or OS keyring); Refresh from Key Vault reads it again.";
}

onStatus((status) => {
  fillProfileSelect($("k-profile"), status);
  const has = status.profiles.length > 0;
  $("key-empty").hidden = has;
  $("refresh-key").disabled = !has;
  if (!has) {
    $("key-result").hidden = true;
    $("key-error").hidden = true;
  }
  if (store.view === "keyinfo" && has && shownFor !== store.selected) load(false);
});

onView((view) => {
  if (view === "keyinfo" && store.selected && shownFor !== store.selected) load(false);
});
