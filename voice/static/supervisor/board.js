// The live board: draws the snapshot the page came with, then each one the server pushes (SSE).
"use strict";
(function () {
  const LABELS = {available: "available", reserved: "ringing", busy: "on a call", wrapup: "wrap-up",
                  away: "away", offline: "offline"};
  const eventsUrl = document.currentScript.dataset.events;
  const rows = document.querySelector("#board-agents tbody");
  const live = document.getElementById("live");
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
  function connect() {
    const source = new EventSource(eventsUrl);
    source.addEventListener("board", (event) => {
      board = JSON.parse(event.data);
      skew = board.server_time - Date.now() / 1000;
      live.textContent = "live";
      live.className = "live on";
      draw();
    });
    source.addEventListener("reconnect", () => { source.close(); connect(); });
    source.onerror = () => { live.textContent = "reconnecting…"; live.className = "live"; };
  }
  draw();
  setInterval(draw, 1000);
  connect();
})();
