// What the views share: the app's last status, the selected profile and the visible view.
import { invoke } from "./dom.js";

export const store = {
  status: null,
  /** The profile the Token and Key info views are about. */
  selected: null,
  view: "profiles",
};

const statusListeners = [];
const viewListeners = [];

export function onStatus(fn) {
  statusListeners.push(fn);
}

export function onView(fn) {
  viewListeners.push(fn);
}

/** Asks the app for its state and tells every view. */
export async function refresh() {
  store.status = await invoke("status");
  const names = store.status.profiles.map((p) => p.name);
  if (!names.includes(store.selected)) {
    store.selected = store.status.profiles.find((p) => p.is_default)?.name ?? names[0] ?? null;
  }
  for (const fn of statusListeners) fn(store.status);
}

export function select(name) {
  store.selected = name;
  for (const fn of statusListeners) fn(store.status);
}

export function showView(view) {
  store.view = view;
  for (const fn of viewListeners) fn(view);
}

/** Fills a profile <select> with the saved profiles, keeping the selection. */
export function fillProfileSelect(select, status) {
  const options = status.profiles.map((p) => {
    const option = document.createElement("option");
    option.value = p.name;
    option.textContent = p.is_default ? `${p.name} (default)` : p.name;
    return option;
  });
  select.replaceChildren(...options);
  select.disabled = options.length === 0;
  if (store.selected) select.value = store.selected;
}
