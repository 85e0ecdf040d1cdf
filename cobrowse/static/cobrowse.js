/*! cobrowse.js: the customer side of co-browsing (README "The customer script").
 *
 * One tag on the site:
 *   <script src="https://cobrowse.example.com/cobrowse/static/cobrowse.js"
 *           data-cluster-url="https://cobrowse.example.com/cobrowse" defer></script>
 * Options, as data- attributes of the tag:
 *   data-cluster-url      the cluster URL with its context path (default: where this script is)
 *   data-mask-all-inputs  "true": mask every input's value, not only passwords and marked fields
 *   data-button           "false": no Co-browse button; call window.Cobrowse.start() instead
 * What the site marks never leaves the browser: password fields always; elements with the
 * class `rr-mask` or the attribute `data-cobrowse-mask` (their text and input values are sent
 * as asterisks, and the agent cannot type into them); elements with the class `rr-block` (not
 * recorded at all: the agent sees an empty box).
 *
 * The wire is REALTIME.md: a WebSocket under the session's sessionServerUrl, rrweb events in
 * batches acknowledged by `cseq`, resumed with `lastSeq` after a reconnect or a page change.
 */
(function () {
  "use strict";
  if (window.Cobrowse) return; // the tag twice on a page

  var tag = document.currentScript;
  var SCRIPT_URL = tag.src;
  var CLUSTER = (tag.getAttribute("data-cluster-url") || new URL("..", SCRIPT_URL).href)
    .replace(/\/+$/, "");
  var MASK_ALL = tag.getAttribute("data-mask-all-inputs") === "true";
  var BUTTON = tag.getAttribute("data-button") !== "false";
  var KEY = "cobrowse:" + CLUSTER; // sessionStorage: the session survives page changes
  var MASK_SELECTOR = ".rr-mask, [data-cobrowse-mask]";
  var WIDGET = "data-cobrowse-widget";
  // Input types whose values go through maskInput (below): every value-bearing type, so that a
  // field the site marks is masked whatever its type. Passwords are always masked.
  var VALUE_TYPES = ["color", "date", "datetime-local", "email", "month", "number", "range",
    "search", "tel", "text", "time", "url", "week", "textarea", "select", "password"];
  var TEXT_INPUTS = /^(text|search|email|tel|url|number|date|datetime-local|month|week|time)$/;
  var STOP_CODES = [1000, 1009, 4400, 4401, 4404, 4410]; // REALTIME.md: do not reconnect
  var FLUSH_MS = 100; // events are batched for this long
  var MAX_BATCH = 512 * 1024; // bytes of events per frame (the node takes up to 1 MiB)
  var MAX_PENDING = 4 * 1024 * 1024; // unacknowledged bytes kept; past it, a new snapshot

  var S = null; // the session: tokens, cseq, lastSeq (persisted)
  var ws = null;
  var welcomed = false;
  var welcomeSeq = 0; // what the node had when this connection began
  var samePage = false; // a reconnect on this page (node ids of `input` still valid)
  var resynced = false;
  var retries = 0;
  var retryTimer = 0;
  var agents = {}; // userId -> {name, state}
  var mode = "pointer";
  var modeAsked = null; // the agent whose mode-request awaits an answer
  var pending = []; // batches sent or to send, until acked: {cseq, text}
  var buffer = []; // events not batched yet
  var flushTimer = 0;
  var rr = null; // rrwebRecord, once loaded
  var recorderLoad = null;
  var stopRecording = null;
  var needSnapshot = false;
  var ending = false;
  var ui = null;

  // ---- persistence ----------------------------------------------------------------------
  function save() {
    if (!S) return;
    try { sessionStorage.setItem(KEY, JSON.stringify(S)); } catch (e) { /* private mode */ }
  }
  function load() {
    try {
      S = JSON.parse(sessionStorage.getItem(KEY) || "null");
      var kept = JSON.parse(sessionStorage.getItem(KEY + ":pending") || "[]");
      sessionStorage.removeItem(KEY + ":pending");
      pending = kept.map(function (text) { return { cseq: JSON.parse(text).cseq, text: text }; });
    } catch (e) { S = null; pending = []; }
  }
  function forget() {
    try { sessionStorage.removeItem(KEY); sessionStorage.removeItem(KEY + ":pending"); }
    catch (e) { /* nothing kept */ }
  }
  // Leaving the page: what is not acknowledged yet goes with the tokens to the next page.
  window.addEventListener("pagehide", function () {
    if (!S) return;
    flush();
    save();
    try {
      sessionStorage.setItem(KEY + ":pending",
        JSON.stringify(pending.map(function (batch) { return batch.text; })));
    } catch (e) { /* too big: the next page's snapshot replaces it */ }
  });

  // ---- the REST API ---------------------------------------------------------------------
  var starting = false;
  function start() {
    if (S || ending || starting) return;
    starting = true;
    ui.show("starting");
    fetch(CLUSTER + "/rest/live/sessions", { method: "POST", credentials: "include" })
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          if (!response.ok) throw failure(response, body);
          S = {
            sessionToken: body.sessionToken,
            userToken: body.userToken,
            // For browsers without third-party cookies: sent back as a request header.
            server: response.headers.get("gcbSessionServer") || body.sessionServerName,
            url: (body.sessionServerUrl || CLUSTER).replace(/\/+$/, ""),
            cseq: 0,
            lastSeq: 0,
          };
          save();
          samePage = false;
          connect();
          loadRecorder(); // ready before an agent is accepted
        });
      })
      .catch(function (error) {
        ui.show("idle", error instanceof TypeError // fetch's network failure
          ? "The co-browse service cannot be reached: check your connection." : error.message);
      })
      .then(function () { starting = false; });
  }

  function failure(response, body) {
    var message = {
      403: "Co-browsing is not enabled for this website.",
      429: "Too many attempts: try again in " + (response.headers.get("Retry-After") || "a few")
        + " seconds.",
      503: "Co-browsing is unavailable right now: try again later.",
    }[response.status];
    return new Error(message || body.errorMessage || "Co-browsing failed (" + response.status + ").");
  }

  // The customer's End without an open channel: Stop Session over REST.
  function stopOverRest() {
    var headers = S.url === CLUSTER && S.server ? { gcbSessionServer: S.server } : {};
    return fetch(S.url + "/rest/live/users/" + encodeURIComponent(S.userToken) + "/session/stop",
      { credentials: "include", headers: headers }).catch(function () { /* ends by timeout */ });
  }

  // ---- the channel ----------------------------------------------------------------------
  function connect() {
    clearTimeout(retryTimer);
    if (!S || ws) return;
    var url = S.url.replace(/^http/, "ws") + "/rest/live/users/"
      + encodeURIComponent(S.userToken) + "/channel";
    var socket = ws = new WebSocket(url);
    socket.onopen = function () {
      socket.send(JSON.stringify({ type: "hello", lastSeq: S.lastSeq }));
    };
    socket.onmessage = function (event) {
      if (socket === ws) receive(JSON.parse(event.data));
    };
    socket.onclose = function (event) {
      if (socket === ws) closed(event.code);
    };
  }

  function send(frame) {
    if (ws && welcomed && ws.readyState === 1) { ws.send(JSON.stringify(frame)); return true; }
    return false;
  }

  function closed(code) {
    ws = null;
    welcomed = false;
    if (!S) return;
    if (ending && code !== 4410) { stopOverRest().then(function () { finish("ended", "exit"); }); return; }
    if (ending || STOP_CODES.indexOf(code) >= 0) { finish(code === 4410 ? "ended" : "lost"); return; }
    // 1001 (node stopping), 1012 (reload), 4408, a network failure: again, with backoff.
    // 1008 (too many frames): after a longer pause.
    var delay = Math.min(10000, 500 * Math.pow(2, retries++)) * (0.8 + 0.4 * Math.random());
    if (code === 1008) delay += 5000;
    ui.show("reconnecting");
    samePage = true;
    retryTimer = setTimeout(connect, delay);
  }

  function receive(m) {
    // Not the welcome's seq: what follows it is still to come.
    if (typeof m.seq === "number" && m.type !== "welcome") { S.lastSeq = m.seq; save(); }
    // Messages up to welcomeSeq are history (the log from lastSeq): the welcome's participants
    // and mode are the present, so history changes no state, and `input` from history only
    // applies on the page it was meant for.
    var old = typeof m.seq === "number" && m.seq <= welcomeSeq;
    switch (m.type) {
      case "welcome": return welcome(m);
      case "ack":
        pending = pending.filter(function (batch) { return batch.cseq > m.cseq; });
        return;
      case "resync":
        // The node lost part of the log (a store restarted from an older state): give the
        // agents a new base rather than leave their view stale until the next snapshot.
        resynced = true;
        if (watched()) record();
        return;
      case "join-request":
        if (old) return;
        agents[m.userId] = { name: m.name, state: "pending" };
        return ui.render();
      case "joined":
        if (old) return;
        agents[m.userId] = { name: m.name, state: "accepted" };
        return ui.render();
      case "left":
        if (old) return;
        delete agents[m.userId];
        if (modeAsked === m.userId) modeAsked = null;
        if (!watched()) stopRecorder();
        return ui.render();
      case "snapshot-request":
        if (watched()) record();
        return;
      case "mode":
        mode = m.mode;
        modeAsked = null;
        return ui.render();
      case "mode-request":
        modeAsked = mode === "write" ? null : m.from;
        return ui.render();
      case "pointer":
        if (!old) ui.pointer(m);
        return;
      case "input":
        if (!old || (samePage && !resynced)) applyInput(m);
        return;
      case "ended": return finish("ended", m.reason);
      case "error": if (window.console) console.warn("cobrowse: refused:", m.errorMessage);
    }
  }

  function welcome(m) {
    welcomed = true;
    welcomeSeq = m.seq;
    resynced = false;
    retries = 0;
    mode = m.mode;
    agents = {};
    (m.participants || []).forEach(function (p) {
      if (p.role === "agent" && (p.state === "pending" || p.state === "accepted")) {
        agents[p.userId] = { name: p.name, state: p.state };
      }
    });
    pending.forEach(function (batch) { ws.send(batch.text); }); // the node acks duplicates
    if (watched()) {
      if (!stopRecording || needSnapshot) record();
    } else {
      stopRecorder();
    }
    ui.show("connected");
  }

  function watched() {
    return Object.keys(agents).some(function (id) { return agents[id].state === "accepted"; });
  }

  function consent(userId, accept) {
    send({ type: "consent", userId: userId, accept: accept });
    if (!accept) delete agents[userId];
    ui.render();
  }

  function setMode(next) {
    modeAsked = null;
    send({ type: "mode", mode: next }); // a refusal too: the agent is told
    ui.render();
  }

  function end() {
    if (!S) return;
    ending = true;
    var mine = S;
    function stop() { if (S === mine) stopOverRest().then(function () { finish("ended", "exit"); }); }
    if (!send({ type: "exit" })) stop();
    else setTimeout(stop, 3000); // `ended` should come first
    ui.render();
  }

  function finish(how, reason) {
    var socket = ws;
    ws = null;
    if (socket) socket.close();
    clearTimeout(retryTimer);
    stopRecorder();
    S = null;
    agents = {};
    mode = "pointer";
    modeAsked = null;
    pending = [];
    ending = false;
    forget();
    ui.show("idle", how === "lost" ? "Co-browsing was interrupted." : reason === "timeout"
      ? "Co-browsing ended: the session timed out." : "Co-browsing has ended.");
  }

  // ---- recording ------------------------------------------------------------------------
  // rrweb's UMD bundle registers with an AMD loader (RequireJS…) instead of setting its global
  // when the page has one. While it loads, `define` is replaced by a forwarder without `.amd`:
  // the bundle sets window.rrwebRecord, other scripts' define() calls still reach the loader.
  // If that fails, the named AMD module is asked for.
  function loadRecorder() {
    if (recorderLoad) return recorderLoad;
    recorderLoad = new Promise(function (resolve, reject) {
      if (window.rrwebRecord) return resolve(window.rrwebRecord);
      var amd = window.define;
      var shim = null;
      if (typeof amd === "function" && amd.amd) {
        shim = function () { return amd.apply(this, arguments); };
        try { window.define = shim; } catch (e) { shim = null; }
      }
      var script = document.createElement("script");
      script.src = new URL("vendor/rrweb/rrweb-record.min.js", SCRIPT_URL).href;
      script.async = true;
      script.setAttribute(WIDGET, "");
      function restore() { if (shim && window.define === shim) window.define = amd; }
      script.onload = function () {
        restore();
        if (window.rrwebRecord) resolve(window.rrwebRecord);
        else if (typeof window.require === "function") window.require(["rrwebRecord"], resolve, reject);
        else reject(new Error("rrweb did not load"));
      };
      script.onerror = function () { restore(); reject(new Error("rrweb did not load")); };
      document.head.appendChild(script);
    });
    recorderLoad.catch(function () { recorderLoad = null; });
    return recorderLoad;
  }

  function masked(el) {
    return !el || !el.closest || MASK_ALL || el.type === "password"
      || el.hasAttribute("data-rr-is-password") || !!el.closest(MASK_SELECTOR);
  }

  // Called by rrweb for every value of VALUE_TYPES: the marked ones become asterisks.
  function maskInput(text, el) {
    return masked(el) ? "*".repeat(text.length) : text;
  }

  // Start recording (rrweb begins with a full snapshot), or take a new full snapshot.
  function record() {
    needSnapshot = false;
    if (stopRecording) { rr.takeFullSnapshot(); return; }
    loadRecorder().then(function (lib) {
      if (stopRecording || !watched() || !S) return;
      rr = lib.record;
      var options = {};
      VALUE_TYPES.forEach(function (type) { options[type] = true; });
      stopRecording = rr({
        emit: onEvent,
        maskInputOptions: options, // every value goes through maskInput
        maskInputFn: maskInput,
        maskAllInputs: MASK_ALL,
        maskTextSelector: "[data-cobrowse-mask]", // rrweb's own maskTextClass is rr-mask
        blockClass: "rr-block",
        blockSelector: "[" + WIDGET + "]", // our own button, frame, pointer and dialogs
        sampling: { mousemove: 50, scroll: 150 }, // every keystroke: the agent watches live
        slimDOMOptions: { script: true, comment: true, headFavicon: true, headMetaSocial: true },
        recordCanvas: false,
        collectFonts: false,
      }) || null;
      ui.render();
    }).catch(function (error) { if (window.console) console.warn("cobrowse:", error.message); });
  }

  function stopRecorder() {
    if (stopRecording) stopRecording();
    stopRecording = null;
    buffer = [];
  }

  function onEvent(event) {
    buffer.push(event);
    if (event.type === 2) { clearTimeout(flushTimer); flushTimer = setTimeout(flush, 0); }
    else if (!flushTimer) flushTimer = setTimeout(flush, FLUSH_MS);
  }

  // Batch the buffered events into frames of at most MAX_BATCH bytes; keep them until acked.
  function flush() {
    clearTimeout(flushTimer);
    flushTimer = 0;
    if (!buffer.length || !S) return;
    var events = buffer;
    buffer = [];
    var batch = [];
    var size = 0;
    events.forEach(function (event) {
      var bytes = JSON.stringify(event).length;
      if (batch.length && size + bytes > MAX_BATCH) { queue(batch); batch = []; size = 0; }
      batch.push(event);
      size += bytes;
    });
    queue(batch);
  }

  function queue(events) {
    S.cseq += 1;
    save(); // a cseq is never used twice, across page changes too
    var batch = { cseq: S.cseq, text: JSON.stringify({ type: "events", cseq: S.cseq, data: events }) };
    pending.push(batch);
    var total = pending.reduce(function (sum, b) { return sum + b.text.length; }, 0);
    if (total > MAX_PENDING) {
      // Offline for long: drop the backlog; a full snapshot replaces it on reconnect.
      pending = [];
      needSnapshot = true;
      return;
    }
    if (welcomed && ws && ws.readyState === 1) ws.send(batch.text);
  }

  // ---- the agent's input (write mode) -----------------------------------------------------
  // {"type": "input", "id": <rrweb node id of the field, as the agent's replay knows it>,
  //  "value": "..."}: applied only in write mode, only to a text field, textarea or select
  // that is neither a password nor masked, nor disabled or read-only.
  function applyInput(m) {
    if (mode !== "write" || !rr || !rr.mirror || typeof m.value !== "string") return;
    var el = rr.mirror.getNode(m.id);
    if (!el || el.nodeType !== 1 || masked(el) || el.closest("[" + WIDGET + "], .rr-block")) return;
    var tag = el.tagName;
    var ok = tag === "TEXTAREA" || tag === "SELECT" || (tag === "INPUT" && TEXT_INPUTS.test(el.type));
    if (!ok || el.disabled || el.readOnly) return;
    // The prototype's setter, then the events a person's typing fires: frameworks that track
    // values (React…) see the change.
    var proto = Object.getPrototypeOf(el);
    var setter = Object.getOwnPropertyDescriptor(proto, "value");
    if (setter && setter.set) setter.set.call(el, m.value.slice(0, 10000));
    else el.value = m.value.slice(0, 10000);
    el.dispatchEvent(new Event("input", { bubbles: true }));
    el.dispatchEvent(new Event("change", { bubbles: true }));
  }

  // ---- the widget: a shadow root, so that the site's CSS and ours stay apart ---------------
  var CSS = [
    ":host{all:initial}",
    "*{box-sizing:border-box;font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}",
    ".panel{position:fixed;right:16px;bottom:16px;z-index:2147483647;background:#fff;color:#1d2433;",
    "border-radius:10px;box-shadow:0 4px 18px rgba(0,0,0,.25);padding:12px 14px;max-width:320px}",
    ".panel.bare{background:none;box-shadow:none;padding:0}",
    "button{cursor:pointer;border:0;border-radius:6px;padding:8px 14px;font-weight:600;",
    "background:#e8590c;color:#fff;margin:4px 6px 0 0}",
    "button.quiet{background:#e9ecef;color:#1d2433}",
    "button:focus-visible{outline:3px solid #1c7ed6;outline-offset:2px}",
    ".launch{box-shadow:0 4px 18px rgba(0,0,0,.25);margin:0}",
    ".code{font:700 26px/1.2 ui-monospace,Menlo,Consolas,monospace;letter-spacing:2px;margin:4px 0}",
    ".status{color:#495057;margin:2px 0}",
    ".note{color:#c92a2a;margin:2px 0 6px;max-width:260px}",
    ".bare .note{background:#fff;padding:6px 10px;border-radius:6px;box-shadow:0 2px 10px rgba(0,0,0,.2)}",
    ".frame{position:fixed;inset:0;border:4px solid #e8590c;pointer-events:none;z-index:2147483646}",
    ".badge{position:fixed;top:0;left:50%;transform:translateX(-50%);background:#e8590c;color:#fff;",
    "padding:3px 12px;border-radius:0 0 8px 8px;font-weight:600;pointer-events:none;z-index:2147483646}",
    ".pointer{position:fixed;z-index:2147483647;pointer-events:none;transition:left .05s linear,top .05s linear}",
    ".pointer svg{display:block}",
    ".pointer span{position:absolute;left:18px;top:16px;background:#1c7ed6;color:#fff;font-size:12px;",
    "padding:1px 6px;border-radius:4px;white-space:nowrap}",
    ".ripple{position:fixed;width:36px;height:36px;margin:-18px 0 0 -18px;border-radius:50%;",
    "border:3px solid #1c7ed6;pointer-events:none;z-index:2147483647;animation:ripple .6s ease-out forwards}",
    "@keyframes ripple{from{transform:scale(.3);opacity:1}to{transform:scale(1.6);opacity:0}}",
    ".backdrop{position:fixed;inset:0;background:rgba(0,0,0,.35);z-index:2147483647;display:flex;",
    "align-items:center;justify-content:center}",
    ".dialog{background:#fff;color:#1d2433;border-radius:10px;padding:20px 22px;max-width:380px;",
    "box-shadow:0 8px 30px rgba(0,0,0,.3)}",
    ".dialog h2{font-size:17px;font-weight:700;margin:0 0 8px}",
    ".dialog p{margin:0 0 12px}",
    "[hidden]{display:none!important}",
  ].join("");

  function el(tagName, attrs, children) {
    var node = document.createElement(tagName);
    Object.keys(attrs || {}).forEach(function (name) {
      if (name === "text") node.textContent = attrs[name];
      else if (name === "onclick") node.addEventListener("click", attrs[name]);
      else node.setAttribute(name, attrs[name]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  function Widget() {
    var host = el("div", { "data-cobrowse-widget": "", class: "rr-block" });
    var root = host.attachShadow({ mode: "open" });
    var state = "idle";
    var note = "";
    var pointerAt = null;
    var dialogFor = null; // what the open dialog answers, to keep its focus across renders
    // A constructed stylesheet: no <style> element, so a site's CSP style-src does not apply.
    if (root.adoptedStyleSheets && window.CSSStyleSheet && CSSStyleSheet.prototype.replaceSync) {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      root.adoptedStyleSheets = [sheet];
    } else {
      root.appendChild(el("style", { text: CSS }));
    }
    var frame = el("div", { class: "frame", hidden: "" });
    var badge = el("div", { class: "badge", hidden: "" });
    var pointer = el("div", { class: "pointer", hidden: "", "aria-hidden": "true" });
    pointer.innerHTML = '<svg width="22" height="22" viewBox="0 0 22 22"><path d="M2 2l7 18 2.6-7.4L19 10z"'
      + ' fill="#1c7ed6" stroke="#fff" stroke-width="1.5"/></svg><span></span>';
    var panel = el("div", { class: "panel", role: "region", "aria-label": "Co-browse" });
    var modal = el("div", { class: "backdrop", hidden: "" });
    [frame, badge, pointer, panel, modal].forEach(function (node) { root.appendChild(node); });
    (document.body || document.documentElement).appendChild(host);
    window.addEventListener("scroll", placePointer, { passive: true });

    function agentName(id) { return (agents[id] && agents[id].name) || "An agent"; }
    function watching() {
      return Object.keys(agents).filter(function (id) { return agents[id].state === "accepted"; });
    }

    function render() {
      panel.textContent = "";
      panel.className = "panel";
      var status = el("p", { class: "status", role: "status", "aria-live": "polite" });
      if (!S) {
        panel.className = BUTTON ? "panel bare" : "panel";
        panel.hidden = !BUTTON && !note;
        if (note) panel.appendChild(el("p", { class: "note", role: "alert", text: note }));
        if (BUTTON) {
          panel.appendChild(el("button", { class: "launch", type: "button", text: state === "starting"
            ? "Starting…" : "Co-browse", onclick: start, "aria-busy": String(state === "starting") }));
        }
      } else {
        panel.hidden = false;
        var names = watching().map(agentName);
        if (names.length) status.textContent = names.join(", ") + " can see this page.";
        else status.textContent = "Read this code to the agent, or paste it in the chat:";
        if (state === "reconnecting") status.textContent = "Connection lost: reconnecting…";
        panel.appendChild(status);
        if (!names.length) {
          var digits = S.sessionToken.replace(/(\d{3})(?=\d)/g, "$1 ");
          panel.appendChild(el("div", { class: "code", "aria-label": "Co-browse code " + digits,
            "data-cobrowse-code": S.sessionToken, text: digits }));
          panel.appendChild(el("button", { class: "quiet", type: "button", text: "Copy code",
            onclick: function () { if (navigator.clipboard) navigator.clipboard.writeText(S.sessionToken); } }));
        }
        if (mode === "write") {
          panel.appendChild(el("p", { class: "status", text: "The agent may fill in fields for you." }));
          panel.appendChild(el("button", { class: "quiet", type: "button", text: "Stop control",
            onclick: function () { setMode("pointer"); } }));
        }
        panel.appendChild(el("button", { type: "button", text: "End co-browsing", onclick: end }));
      }
      var seen = S && watching().length;
      frame.hidden = !seen;
      badge.hidden = !seen;
      badge.textContent = seen ? "Shared with " + watching().map(agentName).join(", ") : "";
      if (!seen) pointer.hidden = true;
      renderDialog();
    }

    // One dialog at a time: consent first, then a request for control.
    function renderDialog() {
      var waiting = S && Object.keys(agents).filter(function (id) { return agents[id].state === "pending"; })[0];
      var key = waiting ? "consent:" + waiting : S && modeAsked ? "mode:" + modeAsked : null;
      if (key === dialogFor) return;
      dialogFor = key;
      modal.textContent = "";
      modal.hidden = !key;
      if (!key) return;
      var name = agentName(waiting || modeAsked);
      var title = waiting ? name + " wants to see this page" : name + " asks to fill in fields for you";
      var text = waiting
        ? "They will see this page and follow you across this website until you end co-browsing. "
          + "Passwords and protected fields stay hidden."
        : "They will be able to type into the fields of this page. Passwords and protected fields "
          + "stay out of reach. You can take control back at any time.";
      var yes = el("button", { type: "button", text: waiting ? "Accept" : "Allow", onclick: function () {
        if (waiting) consent(waiting, true); else setMode("write");
      } });
      var no = el("button", { class: "quiet", type: "button", text: waiting ? "Decline" : "Refuse",
        onclick: function () { if (waiting) consent(waiting, false); else setMode("pointer"); } });
      var dialog = el("div", { class: "dialog", role: "dialog", "aria-modal": "true",
        "aria-labelledby": "cobrowse-title", "aria-describedby": "cobrowse-text" }, [
        el("h2", { id: "cobrowse-title", text: title }),
        el("p", { id: "cobrowse-text", text: text }),
        yes, no,
      ]);
      dialog.addEventListener("keydown", function (event) {
        if (event.key === "Escape") no.click();
        if (event.key === "Tab") { // keep the focus in the dialog
          event.preventDefault();
          (root.activeElement === yes ? no : yes).focus();
        }
      });
      modal.appendChild(dialog);
      yes.focus();
    }

    function placePointer() {
      if (!pointerAt) return;
      pointer.style.left = pointerAt.x - window.scrollX + "px";
      pointer.style.top = pointerAt.y - window.scrollY + "px";
    }

    return {
      show: function (next, message) {
        state = next;
        note = message || "";
        render();
        // A note about the end or a failure fades after a while.
        if (note) setTimeout(function () { if (!S && note === message) { note = ""; render(); } }, 15000);
      },
      render: render,
      // The agent's pointer: x/y in page coordinates; `click` shows a ripple; `hidden` hides it.
      pointer: function (m) {
        if (!S || !watching().length) return;
        if (m.hidden || typeof m.x !== "number" || typeof m.y !== "number") {
          pointer.hidden = true;
          return;
        }
        pointerAt = { x: m.x, y: m.y };
        pointer.hidden = false;
        pointer.querySelector("span").textContent = agentName(m.from);
        placePointer();
        if (m.click) {
          var ripple = el("div", { class: "ripple" });
          ripple.style.left = m.x - window.scrollX + "px";
          ripple.style.top = m.y - window.scrollY + "px";
          root.appendChild(ripple);
          setTimeout(function () { ripple.remove(); }, 700);
        }
      },
    };
  }

  // ---- boot -----------------------------------------------------------------------------
  function boot() {
    ui = Widget();
    load();
    if (S) {
      // A page of the same site, in the same tab: the session goes on.
      ui.show("connecting");
      samePage = false;
      connect();
      loadRecorder();
    } else {
      ui.show("idle");
    }
  }
  window.addEventListener("pageshow", function (event) {
    if (event.persisted && S && !ws) connect(); // back from the back/forward cache
  });
  window.Cobrowse = {
    start: function () { start(); },
    end: function () { end(); },
    sessionToken: function () { return S && S.sessionToken; },
  };
  if (document.body) boot();
  else document.addEventListener("DOMContentLoaded", boot);
})();
