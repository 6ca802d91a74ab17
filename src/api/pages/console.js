// kefu workspace: the agents' queue, conversation, profile and actions.
// Plain JS against kefu's own API; the session is an HttpOnly cookie.
(function () {
  "use strict";

  var T = {
    zh: {
      loginTitle: "客服工作台登录", agentName: "客服账号", password: "密码", login: "登录", logout: "退出",
      workspace: "客服工作台", dashboard: "数据看板", mine: "我的", unassigned: "待认领", all: "全部", optimise: "待优化",
      pick: "从左侧选择一个工单（j / k 上下，回车打开）", claim: "认领", inProgress: "处理中", waiting: "等待顾客",
      resolve: "已解决", close: "关闭", release: "交还机器人", reply: "回复顾客", publicNote: "公开备注",
      privateNote: "内部备注", history: "工单记录", fixTitle: "机器人没听懂", fixIntent: "顾客想问的是",
      fixAnswer: "更好的回答（可选）", save: "保存纠正", cancel: "取消", queue: "队列", channel: "渠道",
      replyHint: "回复顾客（Ctrl+Enter 发送，/ 聚焦）", search: "搜索意图", anyStatus: "全部状态",
      anyPriority: "全部优先级", overdue: "已超时", left: "剩余 ", owner: "处理人：", nobody: "无人认领",
      botOwns: "机器人在回答", youOwn: "你在处理，机器人已静音", fix: "机器人没听懂", oos: "不在服务范围",
      fixed: "已纠正：下次同样的问题会按“{0}”回答", claimed: "已认领", sent: "已发送给顾客",
      queued: "已交给渠道发送", failed: "没有送达：", pending: "待发送", noted: "已添加备注", released: "已交还机器人", moved: "状态已更新",
      profile: "顾客资料", tags: "标签", hints: "提示", orders: "订单", repairs: "维修", refunds: "退款",
      earlier: "以往工单", none: "无", customer: "顾客", bot: "机器人", agent: "客服", reported: "次标记没用",
      nothing: "没有工单", loginFailed: "登录失败：", confidence: "置信度", reveal: "查看完整信息（会记录）",
      status: { new: "待处理", assigned: "已认领", in_progress: "处理中", waiting_customer: "等待顾客",
        resolved: "已解决", closed: "已关闭" },
      priority: { normal: "普通", high: "高", urgent: "紧急" }
    },
    en: {
      loginTitle: "Workspace login", agentName: "Agent", password: "Password", login: "Log in", logout: "Log out",
      workspace: "Workspace", dashboard: "Dashboard", mine: "Mine", unassigned: "Unassigned", all: "All", optimise: "To improve",
      pick: "Pick a ticket on the left (j / k to move, Enter to open)", claim: "Claim", inProgress: "In progress",
      waiting: "Waiting for customer", resolve: "Resolve", close: "Close", release: "Back to the bot",
      reply: "Reply", publicNote: "Public note", privateNote: "Private note", history: "Ticket history",
      fixTitle: "The bot did not understand", fixIntent: "The customer meant", fixAnswer: "A better answer (optional)",
      save: "Save correction", cancel: "Cancel", queue: "Queue", channel: "Channel",
      replyHint: "Reply to the customer (Ctrl+Enter sends, / focuses)", search: "Search intents",
      anyStatus: "Any status", anyPriority: "Any priority", overdue: "Overdue", left: "",
      owner: "Owner: ", nobody: "Unclaimed", botOwns: "The bot is answering", youOwn: "You have it; the bot is silent",
      fix: "Bot did not understand", oos: "Not something we serve", fixed: "Corrected: the same question now gets \u201c{0}\u201d",
      claimed: "Claimed", sent: "Sent to the customer", queued: "Handed to the channel", failed: "Not delivered: ",
      pending: "Waiting to go out", noted: "Note added",
      released: "Handed back to the bot", moved: "Status updated", profile: "Customer", tags: "Tags",
      hints: "Hints", orders: "Orders", repairs: "Repairs", refunds: "Refunds", earlier: "Earlier tickets",
      none: "None", customer: "Customer", bot: "Bot", agent: "Agent", reported: " not-useful reports",
      nothing: "No tickets", loginFailed: "Login failed: ", confidence: "confidence", reveal: "Show in full (audited)",
      status: { new: "New", assigned: "Assigned", in_progress: "In progress", waiting_customer: "Waiting for customer",
        resolved: "Resolved", closed: "Closed" },
      priority: { normal: "Normal", high: "High", urgent: "Urgent" }
    }
  };

  var lang = localStorage.getItem("kefu_console_lang") === "en" ? "en" : "zh";
  var t = T[lang];
  var me = null;
  // The dashboard links here with ?tab=optimise.
  var TABS = ["mine", "unassigned", "all", "optimise"];
  var tab = TABS.indexOf(new URLSearchParams(location.search).get("tab")) >= 0
    ? new URLSearchParams(location.search).get("tab") : "mine";
  var tickets = [];
  var selected = null;
  var current = null;
  var intents = [];
  var fixing = null;
  var $ = function (id) { return document.getElementById(id); };

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function api(method, path, body) {
    var init = { method: method, headers: {}, credentials: "same-origin" };
    if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    return fetch(path, init).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (json) {
        if (r.status === 401 && path !== "/v1/auth/login") showLogin();
        if (!r.ok) {
          var err = new Error((json.error && json.error.message) || ("HTTP " + r.status));
          err.status = r.status;
          throw err;
        }
        return json;
      });
    });
  }

  function toast(text, bad) {
    var box = $("toast");
    box.textContent = text;
    box.className = "show" + (bad ? " bad" : "");
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { box.className = ""; }, 4000);
  }

  function translate() {
    document.documentElement.lang = lang;
    document.querySelectorAll("[data-t]").forEach(function (n) { n.textContent = t[n.dataset.t]; });
    document.querySelectorAll("[data-tp]").forEach(function (n) { n.placeholder = t[n.dataset.tp]; });
    $("lang").textContent = lang === "zh" ? "English" : "中文";
    fillSelect($("f-status"), t.anyStatus, t.status);
    fillSelect($("f-priority"), t.anyPriority, t.priority);
  }

  function fillSelect(select, any, names) {
    var value = select.value;
    select.textContent = "";
    select.appendChild(new Option(any, ""));
    Object.keys(names).forEach(function (k) { select.appendChild(new Option(names[k], k)); });
    select.value = value;
  }

  // --- login ---------------------------------------------------------------
  function showLogin() {
    $("app").hidden = true;
    $("login").hidden = false;
    $("login-agent").focus();
  }

  function start() {
    api("GET", "/v1/auth/me").then(function (who) {
      // Keys and loopback callers have no name to claim tickets with: agents log in.
      if (who.kind !== "agent") return showLogin();
      me = who;
      $("login").hidden = true;
      $("app").hidden = false;
      $("me").textContent = who.name;
      api("GET", "/v1/intents").then(function (r) { intents = r.intents; }).catch(function () {});
      selectTab(tab);
      listen();
    }).catch(function () { showLogin(); });
  }

  $("login-form").addEventListener("submit", function (e) {
    e.preventDefault();
    api("POST", "/v1/auth/login", { agent: $("login-agent").value, password: $("login-password").value })
      .then(function () { $("login-error").textContent = ""; $("login-password").value = ""; start(); })
      .catch(function (err) { $("login-error").textContent = t.loginFailed + err.message; });
  });
  $("logout").addEventListener("click", function () {
    api("POST", "/v1/auth/logout").finally(function () { location.reload(); });
  });
  $("lang").addEventListener("click", function () {
    lang = lang === "zh" ? "en" : "zh";
    t = T[lang];
    localStorage.setItem("kefu_console_lang", lang);
    translate();
    render();
    if (current) showTicket(current);
  });

  // --- queue ---------------------------------------------------------------
  function selectTab(name) {
    tab = name;
    document.querySelectorAll("#tabs button").forEach(function (b) {
      b.setAttribute("aria-selected", String(b.dataset.tab === name));
    });
    load();
  }

  document.querySelectorAll("#tabs button").forEach(function (b) {
    b.addEventListener("click", function () { selectTab(b.dataset.tab); });
  });
  ["f-status", "f-priority"].forEach(function (id) { $(id).addEventListener("change", load); });
  ["f-queue", "f-channel"].forEach(function (id) { $(id).addEventListener("change", load); });

  function load() {
    if (tab === "optimise") return loadOptimise();
    var q = new URLSearchParams({ limit: "200" });
    if (tab === "mine") q.set("assignee", "me");
    if (tab === "unassigned") q.set("unassigned", "true");
    [["status", "f-status"], ["priority", "f-priority"], ["queue", "f-queue"], ["channel", "f-channel"]].forEach(function (p) {
      if ($(p[1]).value.trim()) q.set(p[0], $(p[1]).value.trim());
    });
    return api("GET", "/v1/tickets?" + q).then(function (r) {
      tickets = r.tickets;
      render();
    }).catch(function (err) { toast(err.message, true); });
  }

  function sla(ticket) {
    if (ticket.status !== "new") return { cls: "status", text: t.status[ticket.status] || ticket.status };
    var left = (Date.parse(ticket.due_at) - Date.now()) / 60000;
    if (left <= 0) return { cls: "sla-overdue", text: t.overdue };
    var text = t.left + (left >= 60 ? Math.floor(left / 60) + "h " + Math.floor(left % 60) + "m" : Math.ceil(left) + "m");
    return { cls: left > 30 ? "sla-green" : left > 10 ? "sla-amber" : "sla-red", text: text };
  }

  function when(stamp) {
    return new Date(stamp).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB");
  }

  function age(stamp) {
    var minutes = Math.max(0, (Date.now() - Date.parse(stamp)) / 60000);
    if (minutes < 60) return Math.floor(minutes) + "m";
    if (minutes < 1440) return Math.floor(minutes / 60) + "h";
    return Math.floor(minutes / 1440) + "d";
  }

  function customerName(ticket) {
    var c = (ticket.context && ticket.context.customer) || {};
    return (c.name ? c.name + " · " : "") + (ticket.customer_id || ticket.session_id || "?");
  }

  function render() {
    var list = $("tickets");
    list.textContent = "";
    if (tab === "optimise") return;
    if (!tickets.length) { list.appendChild(el("li", "muted", t.nothing)); return; }
    tickets.forEach(function (ticket) {
      var li = el("li");
      li.dataset.id = ticket.id;
      li.tabIndex = -1;
      if (ticket.id === selected) li.className = "selected";
      li.appendChild(el("span", "who", customerName(ticket)));
      var badge = sla(ticket);
      li.appendChild(el("span", "badge " + badge.cls, badge.text));
      var last = ticket.last_message;
      li.appendChild(el("span", "last", last ? last.text : ""));
      var meta = el("span", "meta");
      meta.appendChild(el("span", null, ticket.id));
      meta.appendChild(el("span", null, ticket.channel));
      meta.appendChild(el("span", "prio-" + ticket.priority, t.priority[ticket.priority] || ticket.priority));
      meta.appendChild(el("span", null, age(ticket.created_at)));
      if (ticket.assignee) meta.appendChild(el("span", null, "@" + ticket.assignee));
      li.appendChild(meta);
      li.addEventListener("click", function () { open(ticket.id); });
      list.appendChild(li);
    });
  }

  function loadOptimise() {
    return api("GET", "/v1/optimise").then(function (queue) {
      var list = $("tickets");
      list.textContent = "";
      queue.intents.forEach(function (group) {
        group.items.forEach(function (item) {
          var li = el("li");
          li.appendChild(el("span", "who", item.text));
          li.appendChild(el("span", "badge sla-amber", item.reports + t.reported));
          li.appendChild(el("span", "last", group.intent + " → " + (item.answer || "")));
          var b = el("button", "fix", t.fix);
          b.addEventListener("click", function (e) { e.stopPropagation(); fix(item.trace_id, item.text); });
          li.appendChild(b);
          list.appendChild(li);
        });
      });
      if (!list.childNodes.length) list.appendChild(el("li", "muted", t.nothing));
    }).catch(function (err) { toast(err.message, true); });
  }

  // --- one ticket ------------------------------------------------------------
  function open(id) {
    selected = id;
    render();
    return api("GET", "/v1/tickets/" + encodeURIComponent(id)).then(showTicket).catch(function (err) { toast(err.message, true); });
  }

  function showTicket(ticket) {
    current = ticket;
    $("empty").hidden = true;
    $("ticket-view").hidden = false;
    $("t-title").textContent = ticket.id + " · " + (t.status[ticket.status] || ticket.status);
    var mine = me && ticket.assignee === me.name;
    $("t-owner").textContent = ticket.assignee ? t.owner + ticket.assignee + (mine ? " · " + t.youOwn : "") : t.nobody + " · " + t.botOwns;
    $("claim").disabled = !!ticket.assignee && ticket.status !== "resolved" && ticket.status !== "closed";
    $("release").disabled = !mine;

    var conv = $("conversation");
    conv.textContent = "";
    ticket.conversation.forEach(function (line) {
      var li = el("li", line.role);
      var tag = el("span", "tag");
      var who = line.role === "agent" ? t.agent + " " + (line.agent || "") : t[line.role];
      tag.appendChild(el("span", null, who + " · " + line.channel + " · " + when(line.at)));
      if (line.role === "customer" && line.intent) {
        tag.appendChild(el("span", "badge status", line.intent + " · " + t.confidence + " " + Number(line.confidence).toFixed(2)));
      }
      // An agent's reply on a platform: whether it went out, and why not.
      if (line.delivery === "queued") tag.appendChild(el("span", "badge sla-amber", t.pending));
      if (line.delivery === "failed") tag.appendChild(el("span", "badge sla-red", t.failed + (line.delivery_error || "")));
      if (line.role === "bot" && line.trace_id) {
        var b = el("button", "fix", t.fix);
        b.addEventListener("click", function () { fix(line.trace_id, questionOf(ticket, line.trace_id)); });
        tag.appendChild(b);
      }
      li.appendChild(tag);
      li.appendChild(el("div", "bubble", line.text));
      conv.appendChild(li);
    });
    conv.scrollTop = conv.scrollHeight;

    var hist = $("history");
    hist.textContent = "";
    ticket.history.forEach(function (h) {
      var text = when(h.at) + " · " + (t.status[h.status] || h.status) + " · " + (h.actor || "") +
        (h.note ? " · " + (h.public ? "" : "🔒 ") + h.note : "");
      hist.appendChild(el("li", null, text));
    });
    showProfile(ticket);
  }

  function questionOf(ticket, traceId) {
    var q = ticket.conversation.find(function (l) { return l.role === "customer" && l.trace_id === traceId; });
    return q ? q.text : "";
  }

  function section(box, title, items) {
    box.appendChild(el("h3", null, title));
    if (!items.length) { box.appendChild(el("p", "muted", t.none)); return; }
    var ul = el("ul");
    items.forEach(function (text) { ul.appendChild(el("li", null, text)); });
    box.appendChild(ul);
  }

  function showProfile(ticket) {
    var box = $("profile");
    box.textContent = "";
    var ctx = ticket.context || {};
    var p = ctx.profile || {};
    box.appendChild(el("h3", null, t.profile));
    box.appendChild(el("p", null, customerName(ticket)));
    if (p.phone) box.appendChild(el("p", "muted", p.phone));
    if (me && ticket.assignee === me.name) {
      // The owner may see the personal data in clear; each reveal is audited.
      var reveal = el("button", "reveal", t.reveal);
      reveal.addEventListener("click", function () {
        api("POST", "/v1/tickets/" + ticket.id + "/reveal", {}).then(function (r) {
          var shown = el("div", "hint");
          var v = r.revealed || {};
          var lines = [v.name, v.phone].concat((v.addresses || []).map(function (a) { return a.order_id + ": " + (a.address || ""); }));
          shown.textContent = lines.filter(Boolean).join("\n");
          reveal.replaceWith(shown);
        }).catch(function (err) { toast(err.message, true); });
      });
      box.appendChild(reveal);
    }
    var tags = el("div", "tags");
    (p.tags || []).forEach(function (tag) { tags.appendChild(el("span", null, tag)); });
    box.appendChild(el("h3", null, t.tags));
    box.appendChild(tags.childNodes.length ? tags : el("p", "muted", t.none));
    box.appendChild(el("h3", null, t.hints));
    (ctx.agent_hints || []).forEach(function (h) { box.appendChild(el("div", "hint", h)); });
    if (!(ctx.agent_hints || []).length) box.appendChild(el("p", "muted", t.none));
    section(box, t.orders, (ctx.orders || []).map(function (o) {
      return [o.id, o.product || o.product_id || "", o.status || "", o.amount_cny ? "¥" + o.amount_cny : ""].join(" ");
    }));
    section(box, t.repairs, (ctx.repairs || []).map(function (r) {
      return [r.id || "", r.product || r.product_id || "", r.status || "", r.opened_at || r.created_at || ""].join(" ");
    }));
    section(box, t.refunds, (ctx.refunds || []).map(function (r) {
      return [r.id || "", r.status || "", r.amount_cny ? "¥" + r.amount_cny : ""].join(" ");
    }));
    var earlier = el("div");
    box.appendChild(earlier);
    if (ticket.customer_id) {
      api("GET", "/v1/tickets?limit=20&customer_id=" + encodeURIComponent(ticket.customer_id)).then(function (r) {
        section(earlier, t.earlier, r.tickets.filter(function (x) { return x.id !== ticket.id; }).map(function (x) {
          return x.id + " · " + (t.status[x.status] || x.status) + " · " + x.intent + " · " + x.created_at.slice(0, 10);
        }));
      }).catch(function () {});
    }
  }

  // --- actions ---------------------------------------------------------------
  function act(promise, done) {
    return promise.then(function (r) {
      toast(done);
      if (r && r.id && r.conversation) showTicket(r); else if (current) open(current.id);
      load();
    }).catch(function (err) { toast(err.message, true); });
  }

  $("claim").addEventListener("click", function () {
    act(api("POST", "/v1/tickets/" + current.id + "/assign", {}), t.claimed);
  });
  $("release").addEventListener("click", function () {
    act(api("POST", "/v1/tickets/" + current.id + "/release"), t.released);
  });
  document.querySelectorAll("#t-actions [data-status]").forEach(function (b) {
    b.addEventListener("click", function () {
      act(api("POST", "/v1/tickets/" + current.id + "/status", { status: b.dataset.status }), t.moved);
    });
  });

  function sendReply() {
    var text = $("reply").value.trim();
    if (!text || !current) return;
    api("POST", "/v1/tickets/" + current.id + "/messages", { text: text }).then(function (r) {
      $("reply").value = "";
      var said = { sent: t.sent, queued: t.queued, failed: t.failed }[r.delivery] || r.delivery;
      toast(said + (r.reason && r.delivery === "failed" ? r.reason : ""), r.delivery === "failed");
      open(current.id);
      load();
    }).catch(function (err) { toast(err.message, true); });
  }

  function note(isPublic) {
    var text = $("reply").value.trim();
    if (!text || !current) return;
    act(api("POST", "/v1/tickets/" + current.id + "/notes", { note: text, public: isPublic }), t.noted)
      .then(function () { $("reply").value = ""; });
  }

  $("composer").addEventListener("submit", function (e) { e.preventDefault(); sendReply(); });
  $("public-note").addEventListener("click", function () { note(true); });
  $("private-note").addEventListener("click", function () { note(false); });
  $("reply").addEventListener("keydown", function (e) {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); sendReply(); }
  });

  // --- 机器人没听懂: correct a bot turn --------------------------------------
  function fillIntents(filter) {
    var select = $("fix-intent");
    select.textContent = "";
    var f = (filter || "").toLowerCase();
    select.appendChild(new Option(t.oos + " (oos)", "oos"));
    intents.forEach(function (i) {
      var label = (lang === "zh" ? i.title_zh : i.title_en) + " (" + i.id + ")";
      if (!f || label.toLowerCase().indexOf(f) >= 0 || i.title_zh.indexOf(filter) >= 0 || i.title_en.toLowerCase().indexOf(f) >= 0) {
        select.appendChild(new Option(label, i.id));
      }
    });
  }

  function fix(traceId, question) {
    fixing = traceId;
    $("fix-text").textContent = question || "";
    $("fix-search").value = "";
    $("fix-answer").value = "";
    fillIntents("");
    $("fix").showModal();
    $("fix-search").focus();
  }

  $("fix-search").addEventListener("input", function () { fillIntents($("fix-search").value); });
  $("fix-search").addEventListener("keydown", function (e) {
    if (e.key === "ArrowDown") { e.preventDefault(); $("fix-intent").focus(); $("fix-intent").selectedIndex = 0; }
  });
  $("fix").addEventListener("close", function () {
    if ($("fix").returnValue !== "save" || !fixing) return;
    var intent = $("fix-intent").value;
    if (!intent) return;
    var body = { trace_id: fixing, intent: intent };
    if ($("fix-answer").value.trim()) body.answer = $("fix-answer").value.trim();
    var option = $("fix-intent").selectedOptions[0];
    api("POST", "/v1/corrections", body).then(function () {
      toast(t.fixed.replace("{0}", option ? option.text : intent));
      if (tab === "optimise") loadOptimise();
    }).catch(function (err) { toast(err.message, true); });
  });

  // --- live ------------------------------------------------------------------
  // New tickets, customers' messages and status changes arrive as events; the
  // browser's EventSource resumes after the last event id, so none is missed.
  function listen() {
    var source = new EventSource("/v1/events");
    var pending = null;
    source.onopen = function () { $("live").className = "live on"; };
    source.onerror = function () { $("live").className = "live"; };
    source.addEventListener("ticket", function (event) {
      var change = JSON.parse(event.data);
      if (current && change.ticket_id === current.id) open(current.id);
      clearTimeout(pending);
      pending = setTimeout(load, 150);
    });
  }

  // SLA badges count down without a reload.
  setInterval(function () { if (tab !== "optimise") render(); }, 15000);

  // --- keyboard ----------------------------------------------------------------
  document.addEventListener("keydown", function (e) {
    var typing = /INPUT|TEXTAREA|SELECT/.test(document.activeElement.tagName) || $("fix").open;
    if (typing || $("app").hidden) return;
    var index = tickets.findIndex(function (x) { return x.id === selected; });
    if (e.key === "j" || e.key === "k") {
      var next = tickets[Math.min(tickets.length - 1, Math.max(0, index + (e.key === "j" ? 1 : -1)))];
      if (next) { selected = next.id; render(); }
    } else if (e.key === "Enter" && selected) {
      open(selected);
    } else if (e.key === "/") {
      e.preventDefault();
      $("reply").focus();
    }
  });

  translate();
  start();
})();
