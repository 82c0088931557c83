// The customer memory in the screen pop: profile, standing notes, last contacts, what we owe, and promises.
// agent.js fetches the context and announces it ("directo:context"); this draws the memory's part of it.
"use strict";

(function () {
  const data = JSON.parse(document.getElementById("memory-data").textContent);
  const m = data.texts;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const fmt = (text, values) => text.replace(/\{(\w+)\}/g, (_, key) => values[key]);
  let context = null;

  function when(iso) {
    if (!iso) return "—";
    return new Date(iso).toLocaleString(data.language, {
      timeZone: data.time_zone, weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
    });
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
    });
    let answer = {};
    try { answer = await response.json(); } catch (_) { /* not JSON: keep the status */ }
    if (!response.ok) throw new Error(answer.error || response.statusText || String(response.status));
    return answer;
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function showProfile(profile) {
    context.customer = profile;
    if (profile.name) $("caller-name").textContent = profile.name;
    $("say-as").hidden = !profile.say_as;
    $("say-as-text").textContent = profile.say_as || "";
    const notes = $("standing-notes");
    notes.textContent = profile.notes || m.no_standing_notes;
    notes.classList.toggle("muted", !profile.notes);
    $("profile-changed").textContent = profile.changed
      ? fmt(m.changed_by, { by: profile.changed.by, at: when(profile.changed.at) }) : "";
    $("profile-name").value = profile.name || "";
    $("profile-say-as").value = profile.say_as || "";
    $("profile-language").value = profile.language || data.language;
    $("profile-notes").value = profile.notes || "";
  }

  // A list drawn afresh: one item per entry, or a line saying there is none.
  function fill(id, entries, none, draw) {
    const list = $(id);
    list.replaceChildren(...entries.map(draw));
    if (entries.length === 0) list.append(element("li", "muted", none));
  }

  function showContacts(contacts) {
    fill("contacts", contacts, m.no_contacts, (contact) => {
      const item = element("li", "contact");
      const head = element("p", "contact-head");
      head.append(element("strong", null, when(contact.started_at)), " · " + (m[contact.kind] || contact.kind),
        " · " + (contact.agent || "—") + " · " + (m[contact.outcome] || contact.outcome));
      if (contact.complaint) head.append(" · ", element("strong", "ref", contact.complaint));
      item.append(head);
      item.append(element("p", contact.notes ? "contact-notes" : "contact-notes muted",
        contact.notes ? contact.notes : m.no_notes));
      if (contact.reason && contact.reason.url) {
        const reason = element("p", "contact-reason", m.reason + ": ");
        const player = element("audio");
        player.controls = true;
        player.preload = "none";
        player.src = contact.reason.url;
        reason.append(player);
        item.append(reason);
      }
      contact.promises.forEach((made) => {
        item.append(element("p", "contact-promise", `${m.promised_on_it} ${m.due} ${when(made.due_at)}: ${made.about}`));
      });
      return item;
    });
  }

  function showOwed(owed) {
    fill("owed", owed, m.nothing_owed, (item) => {
      const row = element("li", "owed-item");
      row.dataset.callback = item.id;
      row.append(element("strong", null, when(item.due_at)), " · " + (m[item.kind] || item.kind));
      if (item.owner) row.append(` ${m.owner} ${item.owner.name}`);
      if (item.about) row.append(": " + item.about);
      if (item.complaint) row.append(" · " + item.complaint);
      if (item.kind === "promise" && context.call_sid) {
        const done = element("button", "small", m.mark_done);
        done.type = "button";
        done.addEventListener("click", async () => {
          try {
            await post(`${data.urls.promises}/${item.id}/done`, { call_sid: context.call_sid });
            row.classList.add("done");
            done.replaceWith(element("span", "ok", " ✓ " + m.done));
          } catch (error) {
            done.replaceWith(element("span", "error", " " + error.message));
          }
        });
        row.append(" ", done);
      }
      return row;
    });
  }

  document.addEventListener("directo:context", (event) => {
    context = event.detail;
    const section = $("memory");
    section.hidden = !context.customer;
    $("profile-result").textContent = "";
    $("promise-result").textContent = "";
    if (!context.customer) return;
    showProfile(context.customer);
    showContacts(context.contacts || []);
    showOwed(context.owed || []);
    $("customer-page").href = context.customer_page;
    $("make-promise").disabled = !context.call_sid || !context.customer.number;
  });

  // A form's answer goes in its result line: what was done, or why not.
  function handle(formId, resultId, send) {
    $(formId).addEventListener("submit", async (event) => {
      event.preventDefault();
      const result = $(resultId);
      try {
        result.textContent = await send();
        result.className = formId === "promise-form" ? "result reference" : "result";
      } catch (error) {
        result.textContent = error.message;
        result.className = "result error";
      }
    });
  }

  handle("profile-form", "profile-result", async () => {
    showProfile(await post(`${data.urls.customers}${context.customer.id}/profile`, {
      name: $("profile-name").value, say_as: $("profile-say-as").value,
      language: $("profile-language").value, notes: $("profile-notes").value,
      revision: context.customer.revision,
    }));
    return m.profile_saved;
  });

  handle("promise-form", "promise-result", async () => {
    const made = await post(data.urls.promises, {
      call_sid: context.call_sid, at: $("promise-at").value, about: $("promise-about").value,
    });
    return fmt(made.created ? m.promised : m.promise_exists, { when: made.words });
  });
})();
