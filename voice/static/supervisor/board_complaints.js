// The live board's complaints at risk or overdue: due dates move in days, so a look every 15 s is live enough
// and needs no stream of its own.
"use strict";
(function () {
  const url = document.currentScript.dataset.url;
  const list = document.getElementById("board-complaints");
  const count = document.getElementById("complaints-attention");

  function item(row) {
    const li = document.createElement("li");
    const link = document.createElement("a");
    link.href = "complaints/" + encodeURIComponent(row.reference);
    link.textContent = row.reference;
    const flag = document.createElement("span");
    flag.className = "flag";
    flag.textContent = row.flag;
    li.append(link, " ", flag, ` ${row.owner || "no owner"}: ${row.next_step}`);
    return li;
  }

  async function refresh() {
    try {
      const body = await (await fetch(url, { headers: { Accept: "application/json" } })).json();
      count.textContent = body.complaints.length;
      list.replaceChildren(...body.complaints.slice(0, 8).map(item));
    } catch (_) { /* the board's own banner says when the server is unreachable */ }
  }
  setInterval(refresh, 15000);
})();
