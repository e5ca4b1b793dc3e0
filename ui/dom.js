// Small helpers shared by the views. The window talks to the app over Tauri's IPC only; it never calls the
// loopback API.
export const { invoke } = window.__TAURI__.core;
export const { listen } = window.__TAURI__.event;

export const $ = (id) => document.getElementById(id);

/** An element with attributes and children; text goes in as text, never as markup. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Asks before something that cannot be undone; resolves to true when the user agreed. */
export function confirmAction(title, text, okLabel) {
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = okLabel;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    dialog.querySelector('button[value="cancel"]').focus();
  });
}

/** Shows each field error next to its field (by `data-for`); errors about no field of this form go to the
 *  form's `data-for=""` line. Returns the first field's input, for focus. */
export function showFieldErrors(form, fields, fallback) {
  for (const p of form.querySelectorAll(".field-error")) p.textContent = "";
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  let first = null;
  const list = fields.length ? fields : fallback ? [{ field: "", message: fallback }] : [];
  for (const { field, message } of list) {
    const target = form.querySelector(`.field-error[data-for="${CSS.escape(field)}"]`)
      ?? form.querySelector('.field-error[data-for=""]');
    target.textContent = target.textContent ? `${target.textContent} ${message}` : message;
    const input = target.closest(".field")?.querySelector("input, select, textarea");
    if (input) {
      input.setAttribute("aria-invalid", "true");
      first ??= input;
    }
  }
  return first;
}

/** Briefly says a button did its job. */
export function flash(button, text) {
  const label = button.dataset.label ?? button.textContent;
  button.dataset.label = label;
  button.textContent = text;
  clearTimeout(button._flash);
  button._flash = setTimeout(() => (button.textContent = label), 1500);
}

/** `12:04:05` for today, else a date and time, in the user's local time. */
export function localTime(epochSeconds) {
  const date = new Date(epochSeconds * 1000);
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay ? date.toLocaleTimeString() : date.toLocaleString();
}

/** `59:12`, `1:02:03`, or `expired`. */
export function countdown(seconds) {
  if (seconds <= 0) return "expired";
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = Math.floor(seconds % 60);
  const pad = (n) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
}
