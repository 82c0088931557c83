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

  function showState(next) {
    state = next;
    if (next.server_time) clockSkew = next.server_time * 1000 - Date.now();
    const pill = $("status-pill");
    pill.dataset.status = next.status;
    pill.textContent = t[next.status] || next.status;
    document.querySelectorAll("[data-set-status]").forEach((button) => {
      button.setAttribute("aria-pressed", String(button.dataset.setStatus === next.status));
    });
    tick();
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
    // The customer memory (memory.js) draws its part of the same context.
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

  async function onMessage(event) {
    const message = JSON.parse(event.data);
    try {
      if (message.type === "call-reserved" && message.call_sid) await popCall(message.call_sid);
      else if (message.type === "callback-reserved" && message.callback_id) await popCallback(message.callback_id);
    } catch (error) {
      $("status-error").textContent = fmt(t.error, { message: error.message });
      $("status-error").hidden = false;
    }
  }

  // --- the event stream: reconnects by itself, and says so when it cannot -----------------------------

  let source = null;
  let bannerTimer = null;
  const BANNER_GRACE_MS = 2500;

  function connect() {
    source = new EventSource(data.urls.events);
    source.addEventListener("open", () => {
      clearTimeout(bannerTimer);
      bannerTimer = null;
      $("disconnected").hidden = true;
    });
    source.addEventListener("message", onMessage);
    source.addEventListener("state", (event) => showState(JSON.parse(event.data)));
    // The server ends each stream after a while so no web thread is held forever: reconnect at once, quietly.
    source.addEventListener("reconnect", () => { source.close(); connect(); });
    source.addEventListener("error", () => {
      if (!bannerTimer) bannerTimer = setTimeout(() => { $("disconnected").hidden = false; }, BANNER_GRACE_MS);
      // A refused stream (e.g. 503) is not retried by the browser itself.
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
    });
  }

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

  refreshState();
  connect();
  startSoftphone();
})();
