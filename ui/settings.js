// Settings: the API (port, pause, key), start at login, notifications and the clipboard delay.
import { $, confirmAction, flash, invoke, showFieldErrors } from "./dom.js";
import { onStatus, onView } from "./store.js";

const form = $("settings-form");
let revealed = false;

async function load() {
  const view = await invoke("settings");
  form.elements.namedItem("port").value = view.port;
  form.elements.namedItem("clipboard_clear_secs").value = view.clipboard_clear_secs;
  form.elements.namedItem("notifications").checked = view.notifications;
  const autostart = form.elements.namedItem("autostart");
  autostart.checked = view.autostart === true;
  autostart.disabled = view.autostart === null;
  $("rotate-key").disabled = !view.api_key_rotatable;
  $("h-key").textContent = `Send it as Authorization: Bearer, X-Api-Key or client_secret. The key: ${view.api_key_source}.`;
  const overrides = view.overridden_by_env.length ? ` ${view.overridden_by_env.join(" and ")} override what is saved here.` : "";
  $("settings-path").textContent = `Saved in ${view.settings_path}.${overrides}`;
  showFieldErrors(form, []);
}

function renderApi(status) {
  $("api-line").textContent = status.api.running
    ? `Listening on ${status.api.url} (127.0.0.1 and [::1] only).`
    : `Paused. Resume to listen on port ${status.api.port} again.`;
  const button = $("pause-resume");
  button.textContent = status.api.running ? "Pause API" : "Resume API";
  button.onclick = () => invoke("run_action", { action: status.api.running ? "pause-api" : "resume-api" });
}

$("reveal-key").addEventListener("click", async () => {
  revealed = !revealed;
  const input = $("s-key");
  input.value = revealed ? await invoke("reveal_api_key") : "";
  input.type = revealed ? "text" : "password";
  $("reveal-key").textContent = revealed ? "Hide" : "Reveal";
});

$("copy-key").addEventListener("click", async (event) => {
  await invoke("run_action", { action: "copy-api-key" });
  flash(event.target, "Copied");
});

$("rotate-key").addEventListener("click", async (event) => {
  const ok = await confirmAction("Rotate the API key?",
    "The API accepts only the new key from now on: clients with the old one get 401 until they use the new one.",
    "Yes, rotate");
  if (!ok) return;
  try {
    await invoke("rotate_api_key");
    if (revealed) $("s-key").value = await invoke("reveal_api_key");
    flash(event.target, "Rotated");
  } catch (error) {
    $("h-key").textContent = error.message ?? String(error);
  }
});

$("forget-approvals").addEventListener("click", async (event) => {
  try {
    await invoke("forget_approvals");
    flash(event.target, "Forgotten");
  } catch (error) {
    flash(event.target, error.message ?? String(error));
  }
});

$("copy-env").addEventListener("click", async (event) => {
  try {
    await invoke("copy_sdk_environment", { profile: null, shell: $("s-shell").value });
    flash(event.target, "Copied");
  } catch (error) {
    flash(event.target, error.message ?? String(error));
  }
});

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const number = (name) => Number.parseInt(form.elements.namedItem(name).value, 10);
  const port = number("port");
  const clear = number("clipboard_clear_secs");
  const errors = [];
  if (!(port >= 0 && port <= 65535)) errors.push({ field: "port", message: "use a port from 0 to 65535 (0: any free port)" });
  if (!(clear >= 0)) errors.push({ field: "clipboard_clear_secs", message: "use a number of seconds, 0 or more" });
  if (errors.length) {
    showFieldErrors(form, errors)?.focus();
    return;
  }
  const autostart = form.elements.namedItem("autostart");
  try {
    await invoke("save_settings", {
      form: {
        port,
        clipboard_clear_secs: clear,
        notifications: form.elements.namedItem("notifications").checked,
        autostart: autostart.disabled ? null : autostart.checked,
      },
    });
    await load();
    $("settings-status").textContent = "Saved";
    setTimeout(() => ($("settings-status").textContent = ""), 2000);
  } catch (error) {
    showFieldErrors(form, error.fields ?? [], error.message ?? String(error))?.focus();
  }
});

onStatus(renderApi);
onView((view) => {
  if (view === "settings") load();
});
