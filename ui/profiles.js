// Profiles: the list and the editor. The rules live in the engine: the form asks `check_profile` as the user
// types and shows each field's message next to it; there is no second copy of them here.
import { $, confirmAction, el, invoke, showFieldErrors } from "./dom.js";
import { onStatus, refresh, select, store } from "./store.js";

const form = $("editor");
/** The profile in the editor: `original` is its saved name, null for a new one. */
let editing = null;
let dirty = false;
/** Fields the user has been in; messages show for these (and for all after a save attempt). */
let touched = new Set();
let showAll = false;
let checkTimer = null;
/** Bumped whenever the editor's subject changes (open, save): a check answered for an older one is dropped. */
let generation = 0;

function readForm() {
  const data = Object.fromEntries(new FormData(form));
  for (const key of Object.keys(data)) data[key] = String(data[key]);
  data.confirm = form.elements.namedItem("confirm").checked;
  return data;
}

function fillForm(values) {
  for (const [key, value] of Object.entries(values)) {
    const input = form.elements.namedItem(key);
    if (input?.type === "checkbox") input.checked = Boolean(value);
    else if (input) input.value = value ?? "";
  }
  $("custom-cloud").hidden = form.elements.namedItem("cloud").value !== "custom";
}

function profileView(name) {
  return store.status?.profiles.find((p) => p.name === name);
}

async function edit(original, values = null) {
  generation += 1;
  clearTimeout(checkTimer);
  editing = { original };
  dirty = false;
  touched = new Set();
  showAll = false;
  fillForm(values ?? (original ? await invoke("profile_form", { name: original }) : await invoke("new_profile_form")));
  showFieldErrors(form, []);
  $("editor-status").textContent = "";
  renderEditorChrome();
  if (original) select(original);
  else render(store.status);
}

function renderEditorChrome() {
  const original = editing?.original;
  const view = original ? profileView(original) : null;
  $("editor-title").textContent = original ? original : "New profile";
  $("editor-badges").replaceChildren(
    ...(view?.is_default ? [el("span", { class: "badge" }, "default")] : []),
    ...(view?.demo ? [el("span", { class: "badge demo" }, "demo")] : []));
  $("duplicate").hidden = !original;
  $("delete").hidden = !original;
  $("set-default").hidden = !original || view?.is_default;
  $("check-setup").hidden = !original;
  const expiry = $("expiry-line");
  expiry.hidden = view?.expires_in_days == null;
  if (!expiry.hidden) {
    expiry.textContent = `${expiryText(view)}. Renew the certificate in Key Vault and upload the new version to the app registration; Check (or kvproxy doctor ${original}) confirms the new one works.`;
  }
  if (checked !== original) $("check-report").hidden = true;
}

/** "Certificate expires in 12 days", from the days the app counted. */
function expiryText(view) {
  const days = view.expires_in_days;
  if (new Date(view.certificate_expires) <= new Date()) return "Certificate expired";
  if (days === 0) return "Certificate expires today";
  if (days === 1) return "Certificate expires tomorrow";
  return `Certificate expires in ${days} days`;
}

/** The profile whose check report is shown. */
let checked = null;

const STATUS_LABEL = { pass: "Passed", warn: "Warning", fail: "Failed", skip: "Skipped" };

function showReport(report) {
  const failed = report.steps.filter((s) => s.status === "fail").length;
  const warned = report.steps.filter((s) => s.status === "warn").length;
  $("check-summary").textContent = failed
    ? `${failed} check${failed > 1 ? "s" : ""} failed${warned ? `, ${warned} warning${warned > 1 ? "s" : ""}` : ""}`
    : warned
      ? `All checks passed, ${warned} warning${warned > 1 ? "s" : ""}`
      : `All ${report.steps.length} checks passed`;
  $("check-steps").replaceChildren(...report.steps.map((step) =>
    el("li", { class: `check-step ${step.status}` },
      el("span", { class: `check-status ${step.status}` }, STATUS_LABEL[step.status] ?? step.status),
      el("div", { class: "check-text" },
        el("strong", {}, step.title),
        el("p", { class: "small" }, step.detail),
        step.fix ? el("p", { class: "small hint-box" }, el("strong", {}, "Fix: "), step.fix) : null))));
  $("check-report").hidden = false;
  // The report is below the form: bring it into view, as the user asked for it.
  $("check-report").scrollIntoView({ block: "start" });
}

async function check() {
  if (!editing) return;
  const asked = generation;
  const errors = await invoke("check_profile", { form: readForm(), original: editing.original });
  if (asked !== generation) return;
  const shown = showAll ? errors : errors.filter((e) => touched.has(fieldName(e.field)));
  showFieldErrors(form, shown);
}

/** The form field an engine field name belongs to. */
function fieldName(field) {
  return { "custom_cloud.authority_host": "authority_host", "custom_cloud.vault_suffixes": "vault_suffixes",
    "custom_cloud.ca_file": "ca_file" }[field] ?? field;
}

form.addEventListener("input", (event) => {
  dirty = true;
  if (event.target.name) touched.add(event.target.name);
  $("custom-cloud").hidden = form.elements.namedItem("cloud").value !== "custom";
  $("editor-status").textContent = "";
  clearTimeout(checkTimer);
  checkTimer = setTimeout(check, 200);
});
form.addEventListener("focusout", (event) => {
  if (event.target.name && event.target.value) {
    touched.add(event.target.name);
    check();
  }
});

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  showAll = true;
  generation += 1;
  clearTimeout(checkTimer);
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  try {
    const saved = await invoke("save_profile", { form: readForm(), original: editing.original });
    editing = { original: saved };
    dirty = false;
    showFieldErrors(form, []);
    store.selected = saved;
    await refresh();
    $("editor-status").textContent = `Saved to ${store.status.profiles_path}`;
  } catch (error) {
    const first = showFieldErrors(form, error.fields ?? [], error.message ?? String(error));
    first?.focus();
  } finally {
    button.disabled = false;
  }
});

// Escape drops unsaved changes.
form.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && dirty && editing) {
    event.preventDefault();
    edit(editing.original);
  }
});

$("add-profile").addEventListener("click", () => {
  edit(null).then(() => form.elements.namedItem("name").focus());
});

$("duplicate").addEventListener("click", async () => {
  const original = editing.original;
  const values = readForm();
  values.name = await invoke("copy_name", { name: original });
  await edit(null, values);
  dirty = true;
  $("editor-title").textContent = `Copy of ${original}`;
  $("editor-status").textContent = "Not saved yet: change what differs, then Save.";
  form.elements.namedItem("name").focus();
});

$("check-setup").addEventListener("click", async (event) => {
  const name = editing?.original;
  if (!name) return;
  const button = event.target;
  const report = $("check-report");
  button.disabled = true;
  button.textContent = "Checking…";
  // A report still shown is from the last run: marked as such until the new one replaces it.
  report.setAttribute("aria-busy", "true");
  $("editor-status").textContent = "";
  try {
    const answer = await invoke("check_setup", { name });
    if (editing?.original !== name) return;
    checked = name;
    showReport(answer);
  } catch (error) {
    if (editing?.original !== name) return;
    report.hidden = true;
    $("editor-status").textContent = `Check could not run: ${error.message ?? String(error)}`;
  } finally {
    report.removeAttribute("aria-busy");
    button.disabled = false;
    button.textContent = "Check";
  }
});

$("set-default").addEventListener("click", async () => {
  await invoke("set_default_profile", { name: editing.original })
    .catch((error) => ($("editor-status").textContent = error.message ?? String(error)));
});

$("delete").addEventListener("click", async () => {
  const name = editing.original;
  const ok = await confirmAction(`Delete profile ${name}?`,
    "It is removed from profiles.toml, for the tray, the API and the CLI alike. The certificate in Key Vault is not touched.",
    "Yes, delete");
  if (!ok) return;
  try {
    await invoke("delete_profile", { name });
    editing = null;
    await refresh();
    const next = store.selected;
    if (next) await edit(next);
    else render(store.status);
  } catch (error) {
    $("editor-status").textContent = error.message ?? String(error);
  }
});

$("try-demo").addEventListener("click", async (event) => {
  const button = event.target;
  const message = $("demo-error");
  button.disabled = true;
  message.textContent = "";
  try {
    await invoke("try_demo");
    await refresh();
    if (store.selected) await edit(store.selected);
  } catch (error) {
    message.textContent = error.message ?? String(error);
  } finally {
    button.disabled = false;
  }
});

function render(status) {
  if (!status) return;
  const has = status.profiles.length > 0;
  const error = $("profiles-error");
  error.hidden = !status.profiles_error;
  error.textContent = status.profiles_error ?? "";
  $("welcome").hidden = has || editing !== null;

  const current = editing?.original;
  $("profile-list").replaceChildren(...status.profiles.map((p) =>
    el("li", {},
      el("button", {
        type: "button",
        class: "profile-item",
        "aria-current": p.name === current ? "true" : null,
        onclick: () => edit(p.name),
      },
      el("span", { class: "profile-name" }, p.name,
        p.is_default ? el("span", { class: "badge" }, "default") : null,
        p.demo ? el("span", { class: "badge demo" }, "demo") : null,
        p.confirm ? el("span", { class: "badge", title: "Programs are asked about before they get its token" }, "asks first") : null),
      el("span", { class: "profile-sub" }, p.scope || "no scope"),
      // Its own line: the warning is longer than a badge, and must not squeeze the name.
      p.expires_in_days != null
        ? el("span", { class: "profile-warn", title: "Renew it in Key Vault and upload the new one to the app registration" },
          `⚠ ${expiryText(p).toLowerCase()}`)
        : null))));

  // A profile deleted or renamed elsewhere (the CLI, an editor) leaves the editor.
  if (current && !status.profiles.some((p) => p.name === current)) {
    editing = null;
  } else if (current && !dirty) {
    invoke("profile_form", { name: current }).then(fillForm).catch(() => {});
  }
  form.hidden = editing === null;
  $("editor-empty").hidden = editing !== null || !has;
  if (editing) renderEditorChrome();
}

onStatus((status) => {
  // First sight of profiles: open the selected one in the editor.
  if (editing === null && store.selected && !$("view-profiles").hidden && status.profiles.length && !dirty) {
    editing = { original: store.selected };
    invoke("profile_form", { name: store.selected }).then((values) => {
      fillForm(values);
      renderEditorChrome();
    });
  }
  render(status);
});
