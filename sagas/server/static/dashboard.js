// The dashboard's little JavaScript: live refresh of the [data-live] parts, and operator actions.
"use strict";

const REFRESH_MS = 2000;
const TOKEN_KEY = "sagas-token";

async function refresh() {
  const live = document.getElementById("live");
  if (live && !live.checked) return;
  let text;
  try {
    const response = await fetch(window.location.href, { headers: { Accept: "text/html" } });
    if (!response.ok) return;
    text = await response.text();
  } catch (error) {
    return; // the server is away for a moment: the next refresh tries again
  }
  const page = new DOMParser().parseFromString(text, "text/html");
  for (const part of document.querySelectorAll("[data-live]")) {
    const fresh = page.getElementById(part.id);
    if (fresh && fresh.innerHTML !== part.innerHTML) part.innerHTML = fresh.innerHTML;
  }
}

async function act(sagaId, action) {
  const result = document.getElementById("action-result");
  const token = document.getElementById("token").value.trim();
  // The token lives in this tab's sessionStorage only: gone when the tab closes, never
  // shared with other tabs or written to disk the way localStorage is.
  window.sessionStorage.setItem(TOKEN_KEY, token);
  const body = { actor: "dashboard" };
  const reason = document.getElementById("reason").value.trim();
  const step = document.getElementById("step").value;
  const data = document.getElementById("data").value.trim();
  if (reason) body.reason = reason;
  if (step) body.step = step;
  if (data) {
    try { body.data = JSON.parse(data); } catch (error) {
      result.className = "error"; result.textContent = `data is not JSON: ${error.message}`; return;
    }
  }
  let response;
  try {
    const root = document.body.dataset.root || "";
    response = await fetch(`${root}/api/instances/${encodeURIComponent(sagaId)}/${encodeURIComponent(action)}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      body: JSON.stringify(body),
    });
  } catch (error) {
    result.className = "error"; result.textContent = `${action}: the server cannot be reached (${error.message})`; return;
  }
  // Problem details are JSON; a proxy or a crash may answer with something else.
  const answer = await response.json().catch(() => ({ detail: `${response.status} ${response.statusText}` }));
  result.className = response.ok ? "ok" : "error";
  result.textContent = response.ok
    ? `${action}: ${answer.outcome} (${answer.statusBefore} → ${answer.statusAfter}) ${answer.note}`
    : `${action}: ${answer.detail}`;
  await refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  const token = document.getElementById("token");
  if (token) token.value = window.sessionStorage.getItem(TOKEN_KEY) || "";
  window.localStorage.removeItem(TOKEN_KEY); // where earlier versions kept it
  for (const button of document.querySelectorAll("button[data-action]")) {
    const sagaId = button.closest("[data-saga-id]").dataset.sagaId;
    button.addEventListener("click", () => act(sagaId, button.dataset.action));
  }
  if (document.querySelector("[data-live]")) window.setInterval(refresh, REFRESH_MS);
});
