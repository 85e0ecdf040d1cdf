/* The agent console (README "The agent console"): find a session by its 9-digit code, join,
 * wait for the customer's consent, replay their page live with rrweb, point, and type into it
 * when the customer grants write mode. The wire is REALTIME.md; served by every node at
 * <ctx>/agent/, so its requests go to the same origin (which allowedOrigins must list).
 */
(function () {
  "use strict";
  var CTX = new URL("..", location.href).href.replace(/\/+$/, ""); // <ctx>/agent/ -> <ctx>
  var STORE = "cobrowse-agent"; // sessionStorage: a reload of the console resumes
  var STOP_CODES = [1000, 1009, 4400, 4401, 4404, 4410];
  var LATE_MS = 150; // the replay runs this far behind the newest event (smooth mouse moves)
  var POINTER_MS = 50; // at most 20 pointer messages a second
  var ENDED = {
    stop: "The customer ended the session.",
    exit: "The customer ended co-browsing.",
    timeout: "The session timed out.",
    declined: "The customer declined your request to join.",
  };

  function $(id) { return document.getElementById(id); }
  var stage = $("stage"), viewport = $("viewport"), overlay = $("overlay"), mark = $("pointer");
  var editor = $("editor"), editorInput = $("editor-input"), editorSelect = $("editor-select");
  var controlButton = $("control");

  var A = null; // this agent: {code, name, base, userToken, userId}
  var ws = null, welcomed = false, retries = 0, retryTimer = 0, lastSeq = 0;
  var accepted = false, mode = "pointer", asked = false;
  var replayer = null, size = null, scale = 1, lastMapped = 0;
  var pointerTimer = 0, pointerNext = null, pointerSent = 0;
  var editing = null; // {id, timer}

  // ---- what the agent sees -------------------------------------------------------------
  function setState(state, text) {
    $("state").dataset.state = state;
    $("state").textContent = text;
  }
  function say(text, isError) {
    $("message").textContent = text;
    $("message").classList.toggle("error", !!isError);
  }
  function showControls() {
    $("join").hidden = !!A;
    $("controls").hidden = !A;
    controlButton.disabled = !accepted || asked || mode === "write";
    controlButton.textContent = mode === "write" ? "You have control"
      : asked ? "Control requested…" : "Request control";
    controlButton.setAttribute("aria-pressed", String(mode === "write"));
    viewport.classList.toggle("write", mode === "write");
    if (mode !== "write") closeEditor(false);
  }

  // ---- finding and joining the session ---------------------------------------------------
  function api(method, url, body) {
    return fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    }).catch(function () {
      throw new Error("Cannot reach the co-browse service: check the network and try again.");
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (response.ok) return data;
        throw new Error(refusal(response, data));
      });
    });
  }

  function refusal(response, data) {
    switch (response.status) {
      case 400: case 404: return "No live session has this code: check it with the customer.";
      case 409: return "This session already has an agent.";
      case 429: return "Too many attempts: wait " + (response.headers.get("Retry-After") || "a few")
        + " seconds, then try again.";
      case 403: return "This console may not join sessions: [cross-origin] allowedOrigins must "
        + "list " + location.origin + ".";
      case 503: return "The node hosting this session is unavailable"
        + (data.node ? " (" + data.node + ")" : "") + ": ask the customer to start again.";
    }
    return data.errorMessage || "The request failed (" + response.status + ").";
  }

  $("join").addEventListener("submit", function (event) {
    event.preventDefault();
    var code = $("code").value.replace(/\s+/g, "");
    var name = $("name").value.trim();
    if (!/^\d{9}$/.test(code)) { say("The code has 9 digits.", true); return; }
    $("join-button").disabled = true;
    say("Looking for the session…");
    // Get Session (routed by the code to its node) gives the URL the node is reached under.
    api("GET", CTX + "/rest/live/sessions/" + code).then(function (found) {
      var base = (found.sessionServerUrl || CTX).replace(/\/+$/, "");
      return api("POST", base + "/rest/live/sessions/" + code + "/join", { name: name })
        .then(function (joined) {
          A = { code: code, name: name, userToken: joined.userToken, userId: joined.userId,
            base: (joined.sessionServerUrl || base).replace(/\/+$/, "") };
          save();
          lastSeq = 0;
          connect();
        });
    }).catch(function (error) {
      say(error.message, true);
    }).then(function () {
      $("join-button").disabled = false;
    });
  });

  function save() {
    try { sessionStorage.setItem(STORE, JSON.stringify(A)); } catch (e) { /* not kept */ }
  }

  // ---- the channel ----------------------------------------------------------------------
  function connect() {
    clearTimeout(retryTimer);
    showControls();
    setState("waiting", retries ? "Reconnecting…" : "Connecting…");
    var socket = ws = new WebSocket(A.base.replace(/^http/, "ws") + "/rest/live/users/"
      + encodeURIComponent(A.userToken) + "/channel");
    socket.onopen = function () { socket.send(JSON.stringify({ type: "hello", lastSeq: lastSeq })); };
    socket.onmessage = function (event) { if (socket === ws) receive(JSON.parse(event.data)); };
    socket.onclose = function (event) { if (socket === ws) closed(event.code); };
  }

  function send(frame) {
    if (ws && welcomed && ws.readyState === 1) ws.send(JSON.stringify(frame));
  }

  function closed(code) {
    ws = null;
    welcomed = false;
    if (!A) return;
    if (STOP_CODES.indexOf(code) >= 0) {
      finish(code === 1000 ? "You left the session." : code === 4404
        ? "This session is over, or your place in it was taken: join again with a new code."
        : "The connection was refused (" + code + ").");
      return;
    }
    // 1001 (the node stops), 1012 (reload), 4408, the network: resume from lastSeq.
    var delay = Math.min(10000, 500 * Math.pow(2, retries++)) * (0.8 + 0.4 * Math.random());
    if (code === 1008) delay += 5000;
    setState("reconnecting", "Reconnecting…");
    say("The connection to the customer was lost: reconnecting (attempt " + retries + ")…", true);
    retryTimer = setTimeout(connect, delay);
  }

  function receive(m) {
    if (typeof m.seq === "number" && m.type !== "welcome") lastSeq = m.seq;
    switch (m.type) {
      case "welcome":
        welcomed = true;
        retries = 0;
        mode = m.mode;
        var me = (m.participants || []).filter(function (p) { return p.userId === A.userId; })[0];
        accepted = !!me && me.state === "accepted";
        if (accepted) { setState("live", "Live"); say("Connected: the customer's page is below."); }
        else { setState("waiting", "Waiting for consent"); say("Waiting for the customer to accept…"); }
        break;
      case "joined":
        if (m.userId === A.userId) {
          accepted = true;
          setState("live", "Live");
          say("The customer accepted: their page appears below.");
        }
        break;
      case "events": addEvents(m.data || []); break;
      case "resync": // the stream restarts from the last full snapshot
        resetReplay();
        say("Catching up with the customer's page…");
        break;
      case "mode":
        if (m.mode === "write") say("You have control: click a field of the customer's page to type in it.");
        else if (asked) say("The customer refused control.", true);
        else if (mode === "write") say("The customer took control back.");
        mode = m.mode;
        asked = false;
        break;
      case "ended": finish(ENDED[m.reason] || "The session has ended."); return;
      case "error":
        say(m.request === "input" ? "Your input was refused: " + m.errorMessage
          : "Refused: " + m.errorMessage, true);
        break;
    }
    showControls();
  }

  function finish(text) {
    var socket = ws;
    ws = null;
    A = null;
    accepted = false;
    mode = "pointer";
    asked = false;
    clearTimeout(retryTimer);
    if (socket) socket.close();
    try { sessionStorage.removeItem(STORE); } catch (e) { /* nothing kept */ }
    resetReplay();
    mark.hidden = true;
    setState("ended", "Ended");
    $("placeholder").textContent = "Not connected. Enter a new code to co-browse again.";
    say(text, true);
    $("delay").textContent = "";
    showControls();
  }

  // ---- the replay -----------------------------------------------------------------------
  // rrweb's live mode plays an event when its timestamp comes up on the replayer's clock. The
  // customer's clock is not ours, and a resumed stream starts with old events: each batch is
  // moved onto our clock (its newest event = its arrival), keeping the gaps within the batch.
  function addEvents(events) {
    if (!events.length) return;
    var now = Date.now();
    var newest = events[events.length - 1].timestamp;
    if (typeof newest !== "number") return;
    var delay = Math.max(0, now - newest);
    $("delay").textContent = "Delay " + (delay < 10000 ? delay + " ms" : Math.round(delay / 1000) + " s");
    events.forEach(function (event) {
      if (event.type === 4 && event.data && event.data.href) $("page").textContent = event.data.href;
      if (!replayer) {
        if (event.type !== 4 && event.type !== 2) return; // wait for Meta / FullSnapshot
        startReplay();
      }
      var copy = Object.assign({}, event);
      copy.timestamp = Math.max(event.timestamp - newest + now, lastMapped);
      lastMapped = copy.timestamp;
      replayer.addEvent(copy);
    });
  }

  function startReplay() {
    replayer = new window.rrwebReplay.Replayer([], {
      root: $("replay"),
      liveMode: true,
      mouseTail: false,
      triggerFocus: false, // never take the keyboard from the agent
      showWarning: false,
    });
    replayer.on("resize", function (dimension) { size = dimension; fit(); });
    viewport.hidden = false;
    $("placeholder").hidden = true;
    replayer.startLive(Date.now() - LATE_MS);
    lastMapped = 0;
  }

  function resetReplay() {
    if (replayer) { try { replayer.destroy(); } catch (e) { /* already gone */ } }
    replayer = null;
    $("replay").textContent = "";
    $("page").textContent = "";
    viewport.hidden = true;
    $("placeholder").hidden = false;
    closeEditor(false);
  }

  // Scale the customer's viewport to fit the stage.
  function fit() {
    if (!size || !replayer) return;
    var width = stage.clientWidth - 32, height = stage.clientHeight - 32;
    scale = Math.min(1, width / size.width, height / size.height);
    viewport.style.width = size.width * scale + "px";
    viewport.style.height = size.height * scale + "px";
    replayer.wrapper.style.transform = "scale(" + scale + ")";
  }
  window.addEventListener("resize", fit);

  // ---- the agent's pointer --------------------------------------------------------------
  // From the scaled replay to the customer's page coordinates (their viewport + their scroll).
  function pagePoint(event) {
    var box = overlay.getBoundingClientRect();
    var vx = (event.clientX - box.left) / scale, vy = (event.clientY - box.top) / scale;
    var win = replayer && replayer.iframe.contentWindow;
    return { vx: vx, vy: vy, x: Math.round(vx + (win ? win.scrollX : 0)),
      y: Math.round(vy + (win ? win.scrollY : 0)) };
  }

  function sendPointer(frame, now) {
    pointerNext = frame;
    var wait = POINTER_MS - (Date.now() - pointerSent);
    if (now || wait <= 0) {
      clearTimeout(pointerTimer);
      pointerTimer = 0;
      pointerSent = Date.now();
      send(pointerNext);
    } else if (!pointerTimer) {
      pointerTimer = setTimeout(function () { pointerTimer = 0; sendPointer(pointerNext, true); }, wait);
    }
  }

  overlay.addEventListener("mousemove", function (event) {
    if (!accepted || !replayer) return;
    var p = pagePoint(event);
    mark.hidden = false;
    mark.style.left = p.vx * scale + "px";
    mark.style.top = p.vy * scale + "px";
    sendPointer({ type: "pointer", x: p.x, y: p.y });
  });
  overlay.addEventListener("mousedown", function (event) {
    if (!accepted || !replayer) return;
    var p = pagePoint(event);
    sendPointer({ type: "pointer", x: p.x, y: p.y, click: true }, true);
    mark.classList.remove("click");
    void mark.offsetWidth; // restart the animation
    mark.classList.add("click");
    if (mode === "write") { event.preventDefault(); editAt(p.vx, p.vy); }
  });
  overlay.addEventListener("mouseleave", function () {
    mark.hidden = true;
    if (accepted) sendPointer({ type: "pointer", hidden: true }, true);
  });

  // ---- write mode: type into the customer's fields --------------------------------------
  // The field under the click, in the replay; its rrweb node id is the customer's too. The
  // agent types into a box over it; each change goes as {"type":"input","id","value"}.
  function editAt(vx, vy) {
    closeEditor(true); // the previous field, if any, gets its last value
    var doc = replayer.iframe.contentDocument;
    var fields = doc ? doc.querySelectorAll("input, textarea, select") : [];
    var field = Array.prototype.filter.call(fields, function (f) {
      var r = f.getBoundingClientRect();
      return vx >= r.left && vx <= r.right && vy >= r.top && vy <= r.bottom;
    })[0];
    if (!field) return;
    var type = (field.getAttribute("type") || "text").toLowerCase();
    if (type === "password" || field.hasAttribute("data-rr-is-password")
      || field.closest(".rr-mask, [data-cobrowse-mask], .rr-block")) {
      say("This field is protected: only the customer can fill it in.", true);
      return;
    }
    if (field.tagName === "INPUT" && !/^(text|search|email|tel|url|number|date|datetime-local|month|week|time)$/.test(type)) {
      say("Only text fields can be typed into.", true);
      return;
    }
    var id = replayer.getMirror().getId(field);
    if (id < 0) return;
    var r = field.getBoundingClientRect();
    var choose = field.tagName === "SELECT";
    editing = { id: id, timer: 0, box: choose ? editorSelect : editorInput };
    editor.style.left = r.left * scale + "px";
    editor.style.top = (r.bottom * scale + 4) + "px";
    editor.hidden = false;
    editorInput.hidden = choose;
    editorSelect.hidden = !choose;
    $("editor-label").textContent = choose ? "Choose for the customer" : "Type for the customer";
    $("editor-label").htmlFor = choose ? "editor-select" : "editor-input";
    if (choose) { // the field's own options, as the replay has them
      editorSelect.textContent = "";
      Array.prototype.forEach.call(field.options, function (option) {
        editorSelect.appendChild(new Option(option.text, option.value));
      });
    }
    editing.box.value = field.value || "";
    editing.box.focus();
    if (!choose) editorInput.select();
    say(choose ? "Choosing for the customer: Escape when done."
      : "Typing into the customer's field: Enter or Escape when done.");
  }

  function sendInput() {
    if (!editing) return;
    clearTimeout(editing.timer);
    editing.timer = 0;
    send({ type: "input", id: editing.id, value: editing.box.value });
  }
  editorSelect.addEventListener("change", sendInput);
  editorSelect.addEventListener("keydown", function (event) {
    if (event.key === "Escape") closeEditor(true);
  });
  editorSelect.addEventListener("blur", function () { closeEditor(true); });
  editorInput.addEventListener("input", function () {
    if (editing && !editing.timer) editing.timer = setTimeout(sendInput, 100);
  });
  editorInput.addEventListener("keydown", function (event) {
    if (event.key === "Escape") closeEditor(true);
  });
  editor.addEventListener("submit", function (event) { event.preventDefault(); closeEditor(true); });
  editorInput.addEventListener("blur", function () { closeEditor(true); });

  function closeEditor(sendLast) {
    if (editing && sendLast) sendInput();
    if (editing) clearTimeout(editing.timer);
    editing = null;
    editor.hidden = true;
  }

  // ---- buttons --------------------------------------------------------------------------
  controlButton.addEventListener("click", function () {
    asked = true;
    send({ type: "mode-request", mode: "write" });
    say("Control requested: waiting for the customer…");
    showControls();
  });
  $("leave").addEventListener("click", function () {
    if (ws && welcomed) send({ type: "exit" }); // the node closes with 1000
    else finish("You left the session.");
  });

  // A reload of the console: resume (from the last full snapshot).
  try { A = JSON.parse(sessionStorage.getItem(STORE) || "null"); } catch (e) { A = null; }
  if (A) { $("code").value = A.code; $("name").value = A.name; connect(); }
  showControls();
})();
