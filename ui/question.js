// A program asks for the token of a profile set to ask first: the oldest open question is shown in a dialog
// until the user answers it here, in a notification, or the program stops waiting.
import { $, invoke } from "./dom.js";
import { onStatus } from "./store.js";

const dialog = $("question");
let shown = null;

function show(question, waiting) {
  shown = question.id;
  $("question-title").textContent = `Allow a token for ${question.profile}?`;
  $("question-text").textContent = `${question.caller} asks for a token of “${question.profile}” (${question.scope}).`;
  $("question-path").textContent = question.program?.path ?? "";
  $("question-more").textContent = waiting > 1 ? `${waiting - 1} more waiting after this one.` : "";
  dialog.returnValue = "";
  if (!dialog.open) dialog.showModal();
  $("question-deny").focus();
}

dialog.addEventListener("close", () => {
  const id = shown;
  shown = null;
  if (id === null || (dialog.returnValue !== "allow" && dialog.returnValue !== "deny")) return;
  const decision = dialog.returnValue === "allow"
    ? { decision: "allow", remember: $("question-remember").value }
    : { decision: "deny" };
  invoke("answer_question", { id, decision });
});

// Escape is no answer: the program waits on until it gives up, and the question comes back with the next
// change.
dialog.addEventListener("cancel", () => {
  dialog.returnValue = "";
});

onStatus((status) => {
  const questions = status.questions ?? [];
  const first = questions[0];
  if (!first) {
    shown = null;
    if (dialog.open) dialog.close();
    return;
  }
  if (first.id !== shown || !dialog.open) show(first, questions.length);
  else $("question-more").textContent = questions.length > 1 ? `${questions.length - 1} more waiting after this one.` : "";
});
