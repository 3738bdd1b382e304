// The dead-letter page: replay and drop buttons. The token is the one the instance page keeps
// in this tab's sessionStorage (see dashboard.js); the list refreshes itself (data-live).
"use strict";

const LETTER_TOKEN_KEY = "sagas-token";

async function reloadLetters() {
  const response = await fetch(window.location.href, { headers: { Accept: "text/html" } });
  if (!response.ok) return;
  const page = new DOMParser().parseFromString(await response.text(), "text/html");
  const fresh = page.getElementById("letters");
  if (fresh) document.getElementById("letters").innerHTML = fresh.innerHTML;
}

async function actOnLetter(letterId, action) {
  const result = document.getElementById("letter-result");
  const token = document.getElementById("token").value.trim();
  window.sessionStorage.setItem(LETTER_TOKEN_KEY, token);
  const root = document.body.dataset.root || "";
  let response;
  try {
    response = await fetch(`${root}/api/dead-letters/${encodeURIComponent(letterId)}/${encodeURIComponent(action)}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      body: "{}",
    });
  } catch (error) {
    result.className = "error"; result.textContent = `${action}: the server cannot be reached (${error.message})`; return;
  }
  const answer = await response.json().catch(() => ({ detail: `${response.status} ${response.statusText}` }));
  result.className = response.ok ? "ok" : "error";
  result.textContent = response.ok
    ? `dead letter ${letterId}: ${answer.fate} (${answer.note})`
    : `${action} dead letter ${letterId}: ${answer.detail}`;
  await reloadLetters();
}

document.addEventListener("DOMContentLoaded", () => {
  // Delegated: the rows are replaced when the list refreshes.
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-letter-action]");
    if (!button) return;
    const row = button.closest("[data-letter-id]");
    actOnLetter(row.dataset.letterId, button.dataset.letterAction);
  });
});
