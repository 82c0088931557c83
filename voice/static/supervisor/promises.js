// The live board's promises: per owner, how today's promises stand, and each one another agent had to keep.
"use strict";
(function () {
  const rows = document.querySelector("#promises-by-agent tbody");
  const missed = document.getElementById("owner-missed");

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function draw(promises) {
    document.getElementById("promises-day").textContent = promises.day;
    rows.replaceChildren(...promises.by_agent.map((a) => {
      const tr = document.createElement("tr");
      tr.dataset.owner = a.owner;
      tr.append(cell(a.owner), cell(a["on time"], "num"), cell(a.late, "num"), cell(a.missed, "num"),
                cell(a.waiting, "num"), cell(a.owner_missed, "num"));
      return tr;
    }));
    if (promises.by_agent.length === 0) {
      const tr = document.createElement("tr");
      tr.append(cell("No promise is due today.", "muted"));
      rows.append(tr);
    }
    missed.replaceChildren(...promises.owner_missed.map((p) => {
      const li = document.createElement("li");
      li.className = "flag";
      li.textContent = `${p.owner} missed their ${p.due_local} promise to ${p.customer}` +
        (p.taken_by ? `: ${p.taken_by} took it (${p.standing})` : "");
      return li;
    }));
  }

  const first = JSON.parse(document.getElementById("snapshot").textContent);
  draw(first.promises);
  document.addEventListener("directo:board", (event) => draw(event.detail.promises));
})();
