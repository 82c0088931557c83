// The agent page: presence, server-pushed screen pop, softphone, complaint and notes. Plain JS, no build step.
"use strict";

(function () {
  const data = JSON.parse(document.getElementById("page-data").textContent);
  const t = data.texts;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const fmt = (text, values) => text.replace(/\{(\w+)\}/g, (_, key) => values[key]);

  let state = { status: "offline", until: null };
  let clockSkew = 0; // server time minus browser time, so the wrap-up countdown matches the server
  let currentSid = null;
  let device = null;
  let activeCall = null;

  async function api(url, options) {
    const init = Object.assign({ headers: {} }, options || {});
    if (init.body !== undefined) {
      init.method = init.method || "POST";
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(init.body);
    }
    if (init.method && init.method !== "GET") init.headers["X-CSRFToken"] = csrf;
    const response = await fetch(url, init);
    let body = {};
    try { body = await response.json(); } catch (_) { /* not JSON: keep the status */ }
    if (!response.ok) {
      const error = new Error(body.error || response.statusText || String(response.status));
      error.status = response.status;
      throw error;
    }
    return body;
  }

  // --- presence ---------------------------------------------------------------------------------------

  // Presence versions (Redis's clock when it changed): a state read before a newer one was shown is dropped.
  let shownVersion = -1;

  function showState(next) {
    if (next.v < shownVersion) return false;
    shownVersion = next.v;
    state = next;
    if (next.server_time) clockSkew = next.server_time * 1000 - Date.now();
    const pill = $("status-pill");
    pill.dataset.status = next.status;
    pill.textContent = t[next.status] || next.status;
    document.querySelectorAll("[data-set-status]").forEach((button) => {
      button.setAttribute("aria-pressed", String(button.dataset.setStatus === next.status));
    });
    tick();
    return true;
  }

  function tick() {
    const wrapping = state.status === "wrapup" && state.until;
    $("wrapup").hidden = !wrapping;
    if (!wrapping) return;
    const left = Math.max(0, Math.ceil(state.until - (Date.now() + clockSkew) / 1000));
    $("wrapup-left").textContent = fmt(t.wrapup_left, { s: left });
    if (left === 0) refreshState();
  }
  setInterval(tick, 1000);

  async function refreshState() {
    try { showState(await api(data.urls.state)); } catch (_) { /* the event stream banner tells the story */ }
  }

  async function setStatus(status) {
    const message = $("status-error");
    message.hidden = true;
    try {
      showState(await api(data.urls.status, { body: { status } }));
    } catch (error) {
      message.textContent = fmt(t.error, { message: error.message });
      message.hidden = false;
    }
  }

  document.querySelectorAll("[data-set-status]").forEach((button) => {
    button.addEventListener("click", () => setStatus(button.dataset.setStatus));
  });
  $("ready").addEventListener("click", () => setStatus("available"));

  // --- screen pop -------------------------------------------------------------------------------------

  function text(id, value) { $(id).textContent = value; }

  function languageName(code) { return t["lang_" + code] || code; }

  function showContext(context) {
    currentSid = context.call_sid;
    const caller = context.caller;
    $("no-call").hidden = true;
    $("call").hidden = false;
    text("call-kind", context.direction === "callback" || context.callback ? t.callback : t.caller);
    text("caller-name", caller.name || t.unknown_name);
    text("caller-number", caller.number || t.withheld);
    text("caller-language", languageName(caller.language));
    const history = context.previous_calls;
    text("previous-calls", history.with_company === 0 ? t.first_call
      : `${history.with_company} ${t.with_company} · ${history.with_you} ${t.with_you}`);
    text("last-agent", context.last_agent ? context.last_agent.name : "—");
    const list = $("open-complaints");
    list.replaceChildren();
    if (context.open_complaints.length === 0) {
      const item = document.createElement("li");
      item.textContent = t.none;
      list.append(item);
    }
    context.open_complaints.forEach((complaint) => {
      const item = document.createElement("li");
      const ref = document.createElement("strong");
      ref.textContent = complaint.reference;
      item.append(ref, " " + complaint.summary);
      list.append(item);
    });
    showCallback(context.callback);
    $("complaint-result").textContent = context.complaint ? fmt(t.complaint_exists, { ref: context.complaint }) : "";
    $("notes").value = context.notes || "";
    $("notes-result").textContent = "";
    const canWrite = Boolean(currentSid);
    $("flag-complaint").disabled = !canWrite;
    $("save-notes").disabled = !canWrite;
    // Other parts of the page (the complaint panel, the customer memory in memory.js) draw from the same context.
    document.dispatchEvent(new CustomEvent("directo:context", { detail: context }));
  }

  function showCallback(callback) {
    $("callback").hidden = !callback;
    if (!callback) return;
    text("promised-by", callback.promised_by ? new Date(callback.promised_by).toLocaleTimeString(data.language) : "—");
    const player = $("reason-player");
    player.hidden = !callback.reason_url;
    $("no-reason").hidden = Boolean(callback.reason_url);
    if (callback.reason_url) player.src = callback.reason_url;
    else player.removeAttribute("src");
  }

  async function popCall(sid) {
    showContext(await api(data.urls.calls + encodeURIComponent(sid) + "/context"));
  }

  async function popCallback(id) {
    showContext(await api(data.urls.callbacks + encodeURIComponent(id) + "/context"));
  }

  // The presence value of the call whose details are shown ("CA…" or "callback:<id>"), set before they load.
  let shownCall = null;

  async function onMessage(event) {
    const message = JSON.parse(event.data);
    try {
      if (message.type === "call-reserved" && message.call_sid) {
        shownCall = message.call_sid;
        await popCall(message.call_sid);
      } else if (message.type === "callback-reserved" && message.callback_id) {
        shownCall = "callback:" + message.callback_id;
        await popCallback(message.callback_id);
      }
    } catch (error) {
      $("status-error").textContent = fmt(t.error, { message: error.message });
      $("status-error").hidden = false;
    }
  }

  // --- the event stream: resumes where it left off, backs off while the server cannot be reached -----

  let source = null;
  let lastEventId = ""; // the newest screen pop received: a stream opened again first replays what came after
  let failures = 0;
  let retryTimer = null;
  let bannerTimer = null;
  const BANNER_GRACE_MS = 2500;
  const MAX_BACKOFF_MS = 30000;

  function onState(next, opening) {
    if (!showState(next)) return;
    // Back after a reload or a reconnect during a call whose pop was never seen (nor replayed): show it now.
    if (opening && (next.status === "reserved" || next.status === "busy") && next.call && next.call !== shownCall) {
      shownCall = next.call;
      const pop = next.call.startsWith("callback:") ? popCallback(next.call.slice(9)) : popCall(next.call);
      pop.catch(() => {});
    }
  }

  function retryLater(ms) {
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, ms);
  }

  function connect() {
    clearTimeout(retryTimer);
    if (source) source.close();
    const url = data.urls.events + (lastEventId ? "?last=" + encodeURIComponent(lastEventId) : "");
    const stream = new EventSource(url);
    source = stream;
    let opening = true; // a stream's first state says where things stand now
    stream.addEventListener("open", () => {
      failures = 0;
      clearTimeout(bannerTimer);
      bannerTimer = null;
      $("disconnected").hidden = true;
    });
    stream.addEventListener("message", (event) => {
      if (event.lastEventId) lastEventId = event.lastEventId;
      onMessage(event);
    });
    stream.addEventListener("state", (event) => {
      onState(JSON.parse(event.data), opening);
      opening = false;
    });
    // The server ends streams now and then, and all of them when it restarts (spread over a moment): come back.
    stream.addEventListener("reconnect", (event) => {
      stream.close();
      retryLater(Math.random() * (JSON.parse(event.data).after_ms || 0));
    });
    // This person opened the page once too often: the newest tab keeps the stream, this one says so and waits.
    stream.addEventListener("superseded", () => {
      stream.close();
      $("superseded").hidden = false;
    });
    stream.addEventListener("error", () => {
      if (!bannerTimer) bannerTimer = setTimeout(() => { $("disconnected").hidden = false; }, BANNER_GRACE_MS);
      // Retry on our own clock, waiting twice as long each time (with jitter), so a server coming back is not
      // stormed by every page at once; a refused stream (401, 503) is retried the same way.
      stream.close();
      retryLater(Math.min(MAX_BACKOFF_MS, 1000 * 2 ** failures) * (0.5 + Math.random() / 2));
      failures += 1;
    });
  }

  $("use-here").addEventListener("click", () => {
    $("superseded").hidden = true;
    connect();
  });

  // --- during the call --------------------------------------------------------------------------------

  $("complaint-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = $("complaint-result");
    result.className = "result";
    try {
      const body = await api(data.urls.flag, { body: { call_sid: currentSid, summary: $("complaint-summary").value } });
      result.textContent = fmt(body.created === false ? t.complaint_exists : t.complaint_reference,
        { ref: body.reference });
      result.classList.add("reference");
    } catch (error) {
      result.textContent = fmt(t.error, { message: error.message });
      result.classList.add("error");
    }
  });

  $("notes-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = $("notes-result");
    try {
      await api(data.urls.calls + encodeURIComponent(currentSid) + "/notes", { body: { notes: $("notes").value } });
      result.textContent = t.saved;
      result.className = "result";
    } catch (error) {
      result.textContent = fmt(t.error, { message: error.message });
      result.className = "result error";
    }
  });

  // --- softphone (Twilio Voice JS SDK) ----------------------------------------------------------------

  function softphone(message, ok) {
    text("softphone-state", message);
    text("softphone-detail", message);
    $("softphone-state").classList.toggle("offline", !ok);
  }

  async function fetchToken() { return (await api(data.urls.token)).token; }

  function showCallControls() {
    $("ringing").hidden = !(activeCall && activeCall.status() === "pending");
    $("on-call").hidden = !(activeCall && activeCall.status() !== "pending");
    if (activeCall) $("mute").textContent = activeCall.isMuted() ? t.unmute : t.mute;
  }

  function onIncoming(call) {
    activeCall = call;
    // The router's <Parameter>s ride on the call: enough for a screen pop even if the event stream is down.
    const sid = call.customParameters.get("callSid");
    if (sid && sid !== currentSid) popCall(sid).catch(() => {});
    ["accept", "disconnect", "cancel", "reject", "mute"].forEach((name) => call.on(name, () => {
      if (name !== "accept" && name !== "mute") activeCall = null;
      showCallControls();
    }));
    showCallControls();
  }

  $("answer").addEventListener("click", () => activeCall && activeCall.accept());
  $("reject").addEventListener("click", () => activeCall && activeCall.reject());
  $("hang-up").addEventListener("click", () => activeCall && activeCall.disconnect());
  $("mute").addEventListener("click", () => activeCall && activeCall.mute(!activeCall.isMuted()));

  async function startSoftphone() {
    if (!window.Twilio || !window.Twilio.Device) {
      softphone(fmt(t.softphone_offline, { reason: "Twilio Voice SDK not loaded" }), false);
      return;
    }
    let token;
    try {
      token = await fetchToken();
    } catch (error) {
      softphone(fmt(t.softphone_offline, { reason: error.message }), false);
      return;
    }
    device = new window.Twilio.Device(token, { closeProtection: true });
    device.on("registered", () => softphone(t.softphone_ready, true));
    device.on("unregistered", () => softphone(fmt(t.softphone_offline, { reason: "unregistered" }), false));
    device.on("error", (error) => softphone(fmt(t.softphone_offline, { reason: error.message }), false));
    device.on("incoming", onIncoming);
    device.on("tokenWillExpire", async () => {
      try { device.updateToken(await fetchToken()); } catch (error) {
        softphone(fmt(t.softphone_offline, { reason: error.message }), false);
      }
    });
    device.register();
  }

  // What the page's other scripts share: the JSON helper (CSRF, errors as messages) and the words.
  window.Directo = { api, fmt, texts: t, language: data.language };

  refreshState();
  connect();
  startSoftphone();
})();
