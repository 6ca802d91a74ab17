// kefu web chat. A page embeds it with one tag:
//   <script src="https://KEFU_HOST/widget.js" defer></script>
// Optional attributes: data-customer-token (the shop backend's signed token for
// a logged-in customer), data-lang (zh or en; default: the page's language),
// data-open (open the chat at once). Plain JS, no dependencies.
(function () {
  "use strict";
  var script = document.currentScript;
  var base = new URL(script.src, location.href).origin;
  var pageLang = (script.dataset.lang || document.documentElement.lang || "zh").toLowerCase();
  var lang = pageLang.indexOf("en") === 0 ? "en" : "zh";
  var customerToken = script.dataset.customerToken || "";
  var storageKey = "kefu_visitor:" + base;

  var words = {
    zh: { title: "在线客服", open: "在线客服", placeholder: "请输入你的问题…", send: "发送", useful: "有用",
          useless: "没用", thanks: "谢谢你的反馈", handoff: "已为你转接人工客服，工单号 ", toAgent: "已转给客服 ",
          agent: "客服", close: "关闭", offline: "连接中断，正在重连…",
          errors: { text_too_long: "消息太长了，请分几条发送。", empty_text: "请先输入内容。",
            expired_customer_token: "登录已过期，请刷新页面后再试。", bad_customer_token: "登录信息无效，请重新登录后再试。",
            bad_visitor: "会话已失效，请刷新页面。", rate_limited: "发得太快了，请稍等几秒再发。",
            busy: "客服有点忙，请稍等几秒再发。", not_ready: "客服系统正在启动，请稍后再试。",
            timeout: "网络有点慢，消息没有发出，请再试一次。", other: "消息没有发出，请稍后再试。" } },
    en: { title: "Customer service", open: "Chat with us", placeholder: "Type your question…", send: "Send",
          useful: "Helpful", useless: "Not helpful", thanks: "Thanks for your feedback",
          handoff: "An agent will take over. Ticket ", toAgent: "Sent to agent ", agent: "Agent",
          close: "Close", offline: "Connection lost, reconnecting…",
          errors: { text_too_long: "That message is too long; please send it in parts.", empty_text: "Please type a message first.",
            expired_customer_token: "Your login has expired; please reload the page.",
            bad_customer_token: "Your login is not valid; please log in again.",
            bad_visitor: "This chat has expired; please reload the page.",
            rate_limited: "Too fast; please wait a few seconds.", busy: "We are busy; please try again in a few seconds.",
            not_ready: "The service is starting; please try again shortly.",
            timeout: "The network is slow and the message was not sent; please try again.",
            other: "The message was not sent; please try again later." } }
  }[lang];

  var css = "" +
    "#kefu-launcher{position:fixed;right:20px;bottom:20px;z-index:2147483000;background:#1f6feb;color:#fff;border:0;" +
    "border-radius:24px;padding:12px 18px;font:15px/1.2 system-ui,sans-serif;cursor:pointer;box-shadow:0 2px 8px rgba(0,0,0,.25)}" +
    "#kefu-panel{position:fixed;right:20px;bottom:20px;z-index:2147483001;width:360px;max-width:calc(100vw - 40px);height:520px;" +
    "max-height:calc(100vh - 40px);display:none;flex-direction:column;background:#fff;border-radius:12px;" +
    "box-shadow:0 4px 24px rgba(0,0,0,.25);font:14px/1.5 system-ui,sans-serif;color:#1b1f24;overflow:hidden}" +
    "#kefu-panel.kefu-open{display:flex}" +
    "#kefu-head{background:#1f6feb;color:#fff;padding:10px 14px;display:flex;justify-content:space-between;align-items:center}" +
    "#kefu-head button{background:transparent;color:#fff;border:0;font-size:18px;cursor:pointer}" +
    "#kefu-log{flex:1;overflow-y:auto;padding:12px;background:#f6f8fa}" +
    ".kefu-line{margin:6px 0;display:flex;flex-direction:column}" +
    ".kefu-bubble{max-width:82%;padding:8px 11px;border-radius:10px;white-space:pre-wrap;word-break:break-word}" +
    ".kefu-customer{align-items:flex-end}.kefu-customer .kefu-bubble{background:#1f6feb;color:#fff}" +
    ".kefu-bot .kefu-bubble{background:#fff;border:1px solid #d0d7de}" +
    ".kefu-agent .kefu-bubble{background:#fff8c5;border:1px solid #d4a72c}" +
    ".kefu-who{font-size:12px;color:#57606a;margin-bottom:2px}" +
    ".kefu-note{align-self:center;font-size:12px;color:#57606a;text-align:center;margin:6px 0}" +
    ".kefu-error{align-self:center;font-size:12px;color:#cf222e;text-align:center;margin:6px 0}" +
    ".kefu-actions{margin-top:4px;display:flex;gap:6px;flex-wrap:wrap}" +
    ".kefu-actions button{border:1px solid #d0d7de;background:#fff;border-radius:12px;padding:2px 10px;font-size:12px;cursor:pointer}" +
    ".kefu-actions button.kefu-option{border-color:#1f6feb;color:#1f6feb;font-size:13px}" +
    "#kefu-form{display:flex;border-top:1px solid #d0d7de}" +
    "#kefu-input{flex:1;border:0;padding:12px;font:inherit;outline:none}" +
    "#kefu-send{border:0;background:#1f6feb;color:#fff;padding:0 16px;font:inherit;cursor:pointer}";

  var style = document.createElement("style");
  style.textContent = css;
  document.head.appendChild(style);

  var launcher = el("button", { id: "kefu-launcher", type: "button" }, words.open);
  var panel = el("div", { id: "kefu-panel", role: "dialog", "aria-label": words.title });
  var head = el("div", { id: "kefu-head" });
  var closeButton = el("button", { type: "button", "aria-label": words.close }, "×");
  head.appendChild(el("strong", {}, words.title));
  head.appendChild(closeButton);
  var log = el("div", { id: "kefu-log", "aria-live": "polite" });
  var form = el("form", { id: "kefu-form" });
  var input = el("input", { id: "kefu-input", type: "text", maxlength: "2000", placeholder: words.placeholder, autocomplete: "off" });
  var sendButton = el("button", { id: "kefu-send", type: "submit" }, words.send);
  form.appendChild(input);
  form.appendChild(sendButton);
  panel.appendChild(head);
  panel.appendChild(log);
  panel.appendChild(form);
  document.body.appendChild(launcher);
  document.body.appendChild(panel);

  var visitor = localStorage.getItem(storageKey) || "";
  var stream = null;
  var started = null;

  launcher.addEventListener("click", open);
  closeButton.addEventListener("click", function () { panel.classList.remove("kefu-open"); launcher.style.display = ""; });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (text) { input.value = ""; send(text); }
  });
  if (script.dataset.open === "true") open();

  function open() {
    panel.classList.add("kefu-open");
    launcher.style.display = "none";
    input.focus();
    start().catch(function () {});
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function scroll() { log.scrollTop = log.scrollHeight; }

  function line(role, text, who) {
    var row = el("div", { "class": "kefu-line kefu-" + role });
    if (who) row.appendChild(el("div", { "class": "kefu-who" }, who));
    row.appendChild(el("div", { "class": "kefu-bubble" }, text));
    log.appendChild(row);
    scroll();
    return row;
  }

  function note(text, kind) {
    var row = el("div", { "class": kind || "kefu-note" }, text);
    log.appendChild(row);
    scroll();
    return row;
  }

  function headers() {
    var h = { "Content-Type": "application/json", "X-Kefu-Visitor": visitor };
    if (customerToken) h["X-Kefu-Customer"] = customerToken;
    return h;
  }

  // A failed answer as an error carrying the server's code; its detail stays for support.
  function checked(r, json) {
    if (r.ok) return json;
    var err = new Error((json.error && json.error.message) || ("HTTP " + r.status));
    err.code = (json.error && json.error.code) || "other";
    throw err;
  }

  // What the customer reads about a failure: a sentence in their language, the detail on hover.
  function failed(err) {
    if (err.shown) return;
    err.shown = true;
    var row = note(words.errors[err.code] || words.errors.other, "kefu-error");
    row.title = err.message;
    row.dataset.code = err.code || "other";
  }

  function call(path, body) {
    return fetch(base + path, { method: "POST", headers: headers(), body: JSON.stringify(body) }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (json) { return checked(r, json); });
    });
  }

  function start() {
    if (started) return started;
    started = fetch(base + "/v1/widget/session", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ visitor: visitor || null, customer_token: customerToken || null })
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (json) { return checked(r, json); });
    }).then(function (session) {
      visitor = session.visitor;
      localStorage.setItem(storageKey, visitor);
      (session.history || []).forEach(function (h) {
        if (h.role === "bot") botLine(h.text, h.trace_id);
        else if (h.role === "agent") line("agent", h.text, words.agent + " " + (h.agent || ""));
        else line("customer", h.text);
      });
      // The history holds everything up to the cursor; the stream brings what follows.
      listen(session.cursor);
    }).catch(function (err) {
      started = null;
      failed(err);
      throw err;
    });
    return started;
  }

  // Agents' replies, live; EventSource resumes after the last event id it saw.
  function listen(after) {
    var url = base + "/v1/widget/events?visitor=" + encodeURIComponent(visitor) + "&after=" + after;
    if (customerToken) url += "&customer_token=" + encodeURIComponent(customerToken);
    stream = new EventSource(url);
    var lost = null;
    stream.addEventListener("message", function (event) {
      var m = JSON.parse(event.data);
      line("agent", m.text, words.agent + " " + (m.agent || ""));
    });
    stream.onerror = function () { if (!lost) lost = note(words.offline); };
    stream.onopen = function () { if (lost) { lost.remove(); lost = null; } };
  }

  function botLine(text, traceId, options) {
    var row = line("bot", text);
    var actions = el("div", { "class": "kefu-actions" });
    (options || []).forEach(function (o) {
      var b = el("button", { type: "button", "class": "kefu-option" }, o.number + ". " + o.title);
      b.addEventListener("click", function () { send(String(o.number)); });
      actions.appendChild(b);
    });
    if (traceId) {
      [[words.useful, true], [words.useless, false]].forEach(function (pair) {
        var b = el("button", { type: "button", "class": "kefu-rate", "data-useful": String(pair[1]) }, pair[0]);
        b.addEventListener("click", function () {
          call("/v1/widget/feedback", { trace_id: traceId, useful: pair[1] }).then(function () {
            actions.querySelectorAll(".kefu-rate").forEach(function (x) { x.remove(); });
            actions.appendChild(el("span", { "class": "kefu-who" }, words.thanks));
          }).catch(failed);
        });
        actions.appendChild(b);
      });
    }
    if (actions.childNodes.length) row.appendChild(actions);
  }

  function send(text) {
    var mine = line("customer", text);
    start().then(function () {
      return call("/v1/widget/messages", { text: text });
    }).then(function (reply) {
      if (reply.reason === "agent_active") {
        mine.appendChild(el("div", { "class": "kefu-who" }, words.toAgent + (reply.agent || "")));
        return;
      }
      if (reply.answer) botLine(reply.answer, reply.trace_id, reply.options);
      if (reply.decision === "handoff" && reply.ticket_id) note(words.handoff + reply.ticket_id);
    }).catch(failed);
  }
})();
