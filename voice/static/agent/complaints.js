// The agent's complaints: the ones they own (due dates, next step, at risk or overdue), and the panel of one
// complaint with the step it waits for: write the resolution, record the customer's answer, record the verdict.
// A screen pop about a complaint (its explanation or follow-up call, or a caller with one open) opens it here.
"use strict";

(function () {
  const { api, fmt, texts: t, language } = window.Directo;
  const $ = (id) => document.getElementById(id);
  const listUrl = $("my-complaints").dataset.url;
  const CALL_KINDS = ["complaint-told", "complaint-followup"];
  let shown = null; // the complaint in the panel

  function when(iso) {
    return iso ? new Date(iso).toLocaleString(language, { dateStyle: "medium", timeStyle: "short" }) : "—";
  }

  function nextStep(row) {
    const due = row.next_call ? when(row.next_call.due_at) : "";
    return fmt(t["next_" + row.next] || row.next_step, { due: when(row.due_at), next: due });
  }

  function flagTag(row, element) {
    element.hidden = !row.flag;
    element.textContent = row.flag ? t["flag_" + row.flag] || row.flag : "";
  }

  // --- my complaints ----------------------------------------------------------------------------------

  async function refreshList() {
    let body;
    try { body = await api(listUrl); } catch (_) { return; } // the event stream's banner tells the story
    const list = $("complaint-list");
    list.replaceChildren(...body.complaints.map((row) => {
      const item = document.createElement("li");
      item.dataset.reference = row.reference;
      item.className = row.flag ? "flagged" : "";
      const open = document.createElement("button");
      open.type = "button";
      open.className = "link";
      open.textContent = row.reference;
      open.addEventListener("click", () => show(row));
      const state = document.createElement("span");
      state.className = "state-tag";
      state.textContent = t["state_" + row.state] || row.state;
      const flag = document.createElement("span");
      flag.className = "flag";
      flagTag(row, flag);
      const detail = document.createElement("small");
      detail.textContent = `${t.due} ${when(row.due_at)} · ${nextStep(row)}`;
      item.append(open, " ", state, " ", flag, document.createElement("br"), detail);
      return item;
    }));
    $("no-complaints").hidden = body.complaints.length > 0;
    if (shown) {
      const fresh = body.complaints.find((row) => row.reference === shown.reference);
      if (fresh) show(fresh);
    }
  }

  // --- one complaint ----------------------------------------------------------------------------------

  function show(row) {
    shown = row;
    $("complaint-panel").hidden = false;
    $("cp-title").textContent = fmt(t.complaint_title, { ref: row.reference });
    $("cp-state").textContent = (t["state_" + row.state] || row.state)
      + (row.reopened_count ? " · " + fmt(t.reopened_times, { n: row.reopened_count }) : "");
    flagTag(row, $("cp-flag"));
    $("cp-next").textContent = nextStep(row);
    $("cp-summary").textContent = row.summary || "—";
    $("cp-due").textContent = when(row.due_at);
    $("cp-owner").textContent = row.owner_name || row.owner || "—";
    $("cp-explanation").textContent = row.explanation || "—";
    $("cp-remedy").textContent = row.remedy || "—";
    $("cp-told").textContent = row.told_at ? fmt(t["told_" + row.told_via], { at: when(row.told_at) }) : "—";
    $("cp-answer").textContent = row.remedy_accepted == null ? "—"
      : (row.remedy_accepted ? t.accepted : t.refused) + (row.answer_note ? ` (“${row.answer_note}”)` : "");
    $("resolve-form").hidden = row.next !== "resolve";
    const words = ["call", "answer", "tell-when-they-call"].includes(row.next) ? "answer"
      : ["followup", "verdict"].includes(row.next) ? "verify" : null;
    $("words-form").hidden = !words;
    $("answer-buttons").hidden = words !== "answer";
    $("verify-buttons").hidden = words !== "verify";
  }

  async function step(action, body) {
    const result = $("cp-result");
    result.className = "result";
    try {
      const row = await api(`${listUrl}${encodeURIComponent(shown.reference)}/${action}`, { body });
      result.textContent = fmt(t.step_saved, { state: t["state_" + row.state] || row.state });
      $("customer-words").value = "";
      show(row);
      refreshList();
    } catch (error) {
      result.textContent = fmt(t.error, { message: error.message });
      result.classList.add("error");
    }
  }

  $("resolve-form").addEventListener("submit", (event) => {
    event.preventDefault();
    step("resolve", { explanation: $("resolve-what").value, remedy: $("resolve-remedy").value,
                      cause: $("resolve-cause").value });
  });
  const words = () => $("customer-words").value;
  $("answer-accepts").addEventListener("click", () => step("answer", { accepted: true, note: words() }));
  $("answer-refuses").addEventListener("click", () => step("answer", { accepted: false, note: words() }));
  $("verify-satisfied").addEventListener("click", () => step("verify", { satisfied: true, note: words() }));
  $("verify-unsatisfied").addEventListener("click", () => step("verify", { satisfied: false, note: words() }));

  // A call or callback about a complaint opens it: the one the call is about, else the caller's due first.
  document.addEventListener("directo:context", async (event) => {
    const context = event.detail;
    const callback = context.callback;
    let reference = callback && CALL_KINDS.includes(callback.kind) ? callback.complaint : null;
    if (!reference && context.open_complaints.length) {
      reference = [...context.open_complaints].sort((a, b) => a.due_at.localeCompare(b.due_at))[0].reference;
    }
    if (!reference) return;
    try { show(await api(listUrl + encodeURIComponent(reference))); } catch (_) { /* shown on the next refresh */ }
  });

  refreshList();
  setInterval(refreshList, 30_000);
})();
