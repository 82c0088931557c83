// The live board: draws the snapshot the page came with, then each one the server pushes (SSE).
"use strict";
(function () {
  const LABELS = {available: "available", reserved: "ringing", busy: "on a call", wrapup: "wrap-up",
                  away: "away", offline: "offline"};
  const eventsUrl = document.currentScript.dataset.events;
  const rows = document.querySelector("#board-agents tbody");
  const live = document.getElementById("live");
  const superseded = document.getElementById("superseded");
  let board = JSON.parse(document.getElementById("snapshot").textContent);
  let skew = 0;  // server clock minus ours, so "for how long" is right on a machine with a wrong clock

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }
  function duration(seconds) {
    if (seconds == null || seconds < 0) return "";
    const m = Math.floor(seconds / 60), s = Math.floor(seconds % 60);
    return m >= 60 ? Math.floor(m / 60) + "h" + String(m % 60).padStart(2, "0") : m + ":" + String(s).padStart(2, "0");
  }
  function share(id, figure) {
    document.getElementById(id).textContent = (figure.percent == null ? "—" : figure.percent) + "%";
    document.getElementById(id + "-n").textContent = figure.count + "/" + figure.of;
  }
  function draw() {
    const now = Date.now() / 1000 + skew;
    rows.replaceChildren(...board.agents.map((a) => {
      const tr = document.createElement("tr");
      tr.className = "state-" + a.status;
      tr.dataset.agent = a.identity;
      tr.append(cell(a.name), cell(LABELS[a.status] || a.status, "state"), cell(a.with || ""),
                cell(a.status === "offline" ? "" : duration(now - (a.since || now)), "num"));
      return tr;
    }));
    const f = board.figures;
    share("fig-fast", f.answered_fast);
    share("fig-previous", f.previous_agent);
    share("fig-callbacks", f.callbacks_on_time);
    share("fig-complaints", f.complaints_acknowledged);
    document.getElementById("fig-calls").textContent = f.calls;
    document.getElementById("waiting").textContent = board.waiting_callbacks;
    const oldest = document.getElementById("oldest");
    oldest.textContent = board.oldest_promise ? new Date(board.oldest_promise).toLocaleTimeString() : "—";
    const flag = document.getElementById("oldest-flag");
    flag.hidden = !board.oldest_flag;
    flag.textContent = board.oldest_flag || "";
    // Other parts of the board (promises.js) draw their own sections from the same snapshot.
    document.dispatchEvent(new CustomEvent("directo:board", { detail: board }));
  }
  // Each agent's row carries `v`, the version of its presence (Redis's clock when it changed): whatever arrives
  // later but was read earlier (a snapshot taken before a change already pushed) never undoes a newer state.
  const STATE = ["status", "call", "since", "until", "v", "with"];
  function mergeSnapshot(next) {
    const shown = new Map(board.agents.map((a) => [a.identity, a]));
    next.agents.forEach((row) => {
      const mine = shown.get(row.identity);
      if (mine && (mine.v || 0) > (row.v || 0)) STATE.forEach((key) => { row[key] = mine[key]; });
    });
    board = next;
    skew = board.server_time - Date.now() / 1000;
  }
  function applyChanges(changes) {
    const rows = new Map(board.agents.map((a) => [a.identity, a]));
    changes.forEach((change) => {
      const row = rows.get(change.identity);
      if (!row) return;  // an agent added since the snapshot: the next one brings their row
      if (change.v !== undefined && (row.v || 0) > change.v) return;
      if ("call" in change && change.call !== row.call && !("with" in change)) row.with = "";
      Object.assign(row, change);
    });
  }
  function showLive(on) {
    live.textContent = on ? "live" : "reconnecting…";
    live.className = on ? "live on" : "live";
  }

  let failures = 0;
  let retryTimer = null;
  function retryLater(ms) {
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, ms);
  }
  function connect() {
    const source = new EventSource(eventsUrl);
    source.addEventListener("open", () => { failures = 0; });
    source.addEventListener("board", (event) => { mergeSnapshot(JSON.parse(event.data)); showLive(true); draw(); });
    source.addEventListener("agents", (event) => { applyChanges(JSON.parse(event.data)); draw(); });
    source.addEventListener("reconnect", (event) => {
      source.close();
      retryLater(Math.random() * (JSON.parse(event.data).after_ms || 0));
    });
    // Opened once too often by the same person: the newest tab stays live, this one says so and waits.
    source.addEventListener("superseded", () => {
      source.close();
      showLive(false);
      live.textContent = "paused";
      superseded.hidden = false;
    });
    source.addEventListener("error", () => {
      showLive(false);
      // Our own doubling waits (with jitter): a restarted server is not stormed by every board at once.
      source.close();
      retryLater(Math.min(30000, 1000 * 2 ** failures) * (0.5 + Math.random() / 2));
      failures += 1;
    });
  }
  document.getElementById("use-here").addEventListener("click", () => { superseded.hidden = true; connect(); });
  draw();
  setInterval(draw, 1000);
  connect();
})();
