// The window talks to the app over Tauri's IPC only; it never calls the loopback API.
const { invoke } = window.__TAURI__.core;
const { listen } = window.__TAURI__.event;

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  // textContent only: profile names and error texts are data, never markup.
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

let adding = false;

async function refresh() {
  const status = await invoke("status");
  render(status);
}

function render(status) {
  const api = $("api");
  api.replaceChildren(
    el("span", { class: `dot ${status.api.running ? "on" : "off"}` }),
    status.api.running ? `API on ${status.api.url}` : `API paused (port ${status.api.port})`,
    el("button", { type: "button", onclick: () => act(status.api.running ? "pause-api" : "resume-api") },
      status.api.running ? "Pause" : "Resume"),
    el("button", { type: "button", onclick: () => act("copy-api-key") }, "Copy API key"),
  );

  $("notices").replaceChildren(...status.notices.map((n) =>
    el("div", { class: `banner ${n.level}` },
      el("div", { class: "banner-text" }, el("strong", {}, n.title), el("p", {}, n.detail)),
      el("button", { type: "button", class: "link", "aria-label": "Dismiss", onclick: () => dismiss(n.id) }, "Dismiss"))));

  const hasProfiles = status.profiles.length > 0;
  $("welcome").hidden = hasProfiles || adding;
  $("add").hidden = !adding;
  $("profiles-card").hidden = !hasProfiles && !status.profiles_error;
  const error = $("profiles-error");
  error.hidden = !status.profiles_error;
  error.textContent = status.profiles_error ?? "";

  $("profiles").replaceChildren(...status.profiles.map((p) =>
    el("li", { class: "profile" },
      el("div", { class: "profile-main" },
        el("div", { class: "profile-name" }, p.name,
          ...(p.is_default ? [el("span", { class: "badge" }, "default")] : []),
          ...(p.demo ? [el("span", { class: "badge demo" }, "demo")] : [])),
        el("div", { class: "muted small" }, `${p.scope} · ${p.certificate} in ${p.vault_url}`)),
      el("button", { type: "button", class: "primary", onclick: (e) => copyToken(p.name, e.target) }, "Copy token"))));
}

async function act(action) {
  await invoke("run_action", { action }).catch(showError);
}

async function dismiss(id) {
  await invoke("dismiss", { id });
}

async function copyToken(name, button) {
  button.disabled = true;
  try {
    await invoke("copy_token", { name });
    button.textContent = "Copied";
    setTimeout(() => (button.textContent = "Copy token"), 1500);
  } catch {
    // The app shows the failure as a notice with the details.
  } finally {
    button.disabled = false;
  }
}

function showError(error) {
  console.error(error);
}

function showAdd(show) {
  adding = show;
  refresh();
  if (show) document.querySelector("#add-form input[name=name]").focus();
}

$("try-demo").addEventListener("click", async (event) => {
  const button = event.target;
  const message = $("demo-error");
  button.disabled = true;
  message.hidden = true;
  try {
    await invoke("try_demo");
  } catch (error) {
    message.textContent = error.message ?? String(error);
    message.hidden = false;
  } finally {
    button.disabled = false;
  }
});
$("show-add").addEventListener("click", () => showAdd(true));
$("show-add-2").addEventListener("click", () => showAdd(true));
$("cancel-add").addEventListener("click", () => showAdd(false));

$("add-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  for (const p of form.querySelectorAll(".field-error")) p.textContent = "";
  const fields = Object.fromEntries(new FormData(form));
  try {
    await invoke("save_profile", { form: { ...fields, scopes: fields.scope }, original: null });
    form.reset();
    showAdd(false);
  } catch (error) {
    // Each field error next to its field; one about no field of this form goes last.
    const fields = error.fields?.length ? error.fields : [{ field: "", message: error.message ?? String(error) }];
    for (const { field, message } of fields) {
      const target = form.querySelector(`.field-error[data-for="${field}"]`)
        ?? form.querySelector('.field-error[data-for=""]');
      target.textContent = target.textContent ? `${target.textContent} ${message}` : message;
    }
    const first = fields[0].field;
    form.querySelector(`[name="${first === "scopes" ? "scope" : first}"]`)?.focus();
  }
});

listen("kvproxy://changed", refresh);
refresh();
