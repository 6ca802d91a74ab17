// kefu dashboard: the weekly review as charts, drawn as SVG from /v1/stats.
// Plain JS, no library; the session is the workspace's HttpOnly cookie.
(function () {
  "use strict";

  var T = {
    zh: {
      title: "数据看板", workspace: "客服工作台", signin: "请先登录客服工作台（客服或管理员）。", from: "开始",
      to: "结束（含）", channel: "渠道", last7: "近 7 天", last30: "近 30 天", show: "查看", csv: "导出 CSV",
      trend: "每日处理方式", reasons: "转人工原因", latency: "响应时间（机器人，毫秒）", scenarios: "各业务场景",
      channels: "各渠道", agents: "客服效率", questions: "高频问题", notUseful: "被标记“没用”最多的回答",
      loading: "加载中…", failed: "加载失败：", turns: "咨询量", autoRate: "自动解决率", clarifyRate: "追问率",
      handoffRate: "转人工率", p50: "中位响应", p99: "P99 响应", answered: "自动回答", clarified: "追问",
      handedOff: "转人工", scenario: "场景", channelCol: "渠道", notUsefulCol: "没用", agent: "客服",
      queue: "队列", tickets: "工单", resolved: "已解决", firstResponse: "首次回复（分钟，中位）", resolution: "解决用时（分钟，中位）",
      reopen: "重开率", intent: "意图", count: "次数", rate: "比例", answer: "回答", comments: "顾客留言",
      fix: "去纠正", none: "没有数据", askedTimes: "次", agentWork: "全部工单：首次回复 P50 {0} / P90 {1} 分钟，解决用时 P50 {2} / P90 {3} 分钟",
      reason: { human_requested: "要求人工", complaint: "投诉", angry_customer: "情绪激动", agent_intent: "需人工处理",
        unresolved: "多次未解决" }
    },
    en: {
      title: "Dashboard", workspace: "Workspace", signin: "Log in to the workspace first (agent or admin).",
      from: "From", to: "To (inclusive)", channel: "Channel", last7: "Last 7 days", last30: "Last 30 days",
      show: "Show", csv: "Export CSV", trend: "Daily outcomes", reasons: "Hand-off reasons",
      latency: "Bot response time (ms)", scenarios: "Scenarios", channels: "Channels", agents: "Agent efficiency",
      questions: "Top questions", notUseful: "Answers most marked not useful", loading: "Loading…",
      failed: "Could not load: ", turns: "Messages", autoRate: "Auto-answer rate", clarifyRate: "Clarify rate",
      handoffRate: "Hand-off rate", p50: "Median response", p99: "P99 response", answered: "Answered",
      clarified: "Clarified", handedOff: "Handed off", scenario: "Scenario", channelCol: "Channel",
      notUsefulCol: "Not useful", agent: "Agent", queue: "Queue", tickets: "Tickets", resolved: "Resolved",
      firstResponse: "First reply (min, median)", resolution: "Resolution (min, median)", reopen: "Reopen rate",
      intent: "Intent", count: "Count", rate: "Rate", answer: "Answer", comments: "Comments", fix: "Correct it",
      none: "No data", askedTimes: "×", agentWork: "All tickets: first reply P50 {0} / P90 {1} min, resolution P50 {2} / P90 {3} min",
      reason: { human_requested: "Asked for a person", complaint: "Complaint", angry_customer: "Upset customer",
        agent_intent: "Needs a person", unresolved: "Not resolved" }
    }
  };
  var COLORS = { answered: "#2da44e", clarified: "#d4a72c", handed_off: "#cf222e", rate: "#1f6feb" };
  var SVG = "http://www.w3.org/2000/svg";

  var lang = localStorage.getItem("kefu_console_lang") === "en" ? "en" : "zh";
  var t = T[lang];
  var report = null;
  var $ = function (id) { return document.getElementById(id); };

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function pct(rate) { return rate === null || rate === undefined ? "–" : (rate * 100).toFixed(1) + "%"; }
  function num(value, digits) { return value === null || value === undefined ? "–" : value.toFixed(digits || 0); }
  function fill(template, values) { return template.replace(/\{(\d)\}/g, function (_, i) { return values[i]; }); }

  function day(date) {
    var d = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
    return d.toISOString().slice(0, 10);
  }

  // The deployment's zone, once a report has named it: "today" is the
  // deployment's today (the server reads dates there), not the browser's.
  var zone = null;
  // The preset the period inputs hold (7 or 30 days), none once edited by hand.
  var presetDays = 7;

  function today() {
    if (!zone) return day(new Date());
    return new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" })
      .format(new Date());
  }

  function setPeriod(days) {
    presetDays = days;
    var to = new Date(today() + "T00:00:00Z");
    var from = new Date(to.getTime() - (days - 1) * 86400000);
    $("from").value = from.toISOString().slice(0, 10);
    $("to").value = to.toISOString().slice(0, 10);
  }

  function query() {
    var q = new URLSearchParams({ from: $("from").value, to: $("to").value });
    if ($("channel").value.trim()) q.set("channel", $("channel").value.trim());
    return q;
  }

  function translate() {
    document.documentElement.lang = lang;
    document.querySelectorAll("[data-t]").forEach(function (n) { n.textContent = t[n.dataset.t]; });
    $("lang").textContent = lang === "zh" ? "English" : "中文";
  }

  var loads = 0;

  function load() {
    var mine = ++loads;
    var q = query();
    var csv = new URLSearchParams(q);
    csv.set("format", "csv");
    $("csv").href = "/v1/stats/export?" + csv;
    $("state").textContent = t.loading;
    $("board").setAttribute("aria-busy", "true");
    fetch("/v1/stats?" + q, { credentials: "same-origin" }).then(function (r) {
      return r.json().then(function (json) {
        if (r.status === 401 || r.status === 403) { $("board").hidden = true; $("signin").hidden = false; }
        if (!r.ok) throw new Error((json.error && json.error.message) || ("HTTP " + r.status));
        return json;
      });
    }).then(function (json) {
      if (mine !== loads) return;
      if (!zone && json.timezone) {
        // The first report names the deployment's zone; when its today is not
        // the browser's, the default period moves to the deployment's days.
        var shown = $("from").value + $("to").value;
        zone = json.timezone;
        if (presetDays) setPeriod(presetDays);
        if ($("from").value + $("to").value !== shown) return load();
      }
      report = json;
      render();
      $("state").textContent = "";
    }).catch(function (err) {
      $("state").textContent = t.failed + err.message;
    }).finally(function () { if (mine === loads) $("board").removeAttribute("aria-busy"); });
  }

  function render() {
    kpis();
    daily();
    reasons();
    latency();
    scenarios();
    channels();
    agents();
    questions();
    notUseful();
  }

  function kpis() {
    var box = $("kpis");
    box.textContent = "";
    [["turns", report.turns], ["autoRate", pct(report.auto_answer_rate)], ["clarifyRate", pct(report.clarify_rate)],
      ["handoffRate", pct(report.handoff_rate)], ["p50", num(report.latency_ms.p50, 0) + " ms"],
      ["p99", num(report.latency_ms.p99, 0) + " ms"]].forEach(function (k) {
      var tile = el("div", { "class": "kpi", "data-figure": k[0] });
      tile.appendChild(el("div", { "class": "label" }, t[k[0]]));
      tile.appendChild(el("div", { "class": "value" }, String(k[1])));
      box.appendChild(tile);
    });
  }

  // Stacked bars of each day's answered / clarified / handed-off turns.
  function daily() {
    var box = $("daily");
    box.textContent = "";
    var days = report.daily;
    // Turns on the left axis, the auto-answer rate on the right.
    var width = 900, height = 220, left = 36, right = 40, bottom = 22, top = 8;
    var max = Math.max(1, Math.max.apply(null, days.map(function (d) { return d.turns; })));
    var chart = svg("svg", { viewBox: "0 0 " + width + " " + height, role: "img", "aria-label": t.trend });
    var step = (width - left - right) / Math.max(1, days.length);
    var scale = (height - bottom - top) / max;
    [0, 0.5, 1].forEach(function (f) {
      var y = height - bottom - f * max * scale;
      chart.appendChild(svg("line", { x1: left, x2: width - right, y1: y, y2: y, stroke: "#eaeef2" }));
      chart.appendChild(svg("text", { x: left - 4, y: y + 4, "text-anchor": "end" }, String(Math.round(f * max))));
      chart.appendChild(svg("text", { x: width - right + 4, y: y + 4, fill: COLORS.rate }, f * 100 + "%"));
    });
    days.forEach(function (d, i) {
      var x = left + i * step + step * 0.15, w = step * 0.7, y = height - bottom;
      var group = svg("g", { "class": "day", "data-day": d.day, "data-turns": d.turns });
      group.appendChild(svg("title", {}, d.day + ": " + d.turns + " · " + t.autoRate + " " + pct(d.auto_answer_rate)));
      ["answered", "clarified", "handed_off"].forEach(function (kind) {
        var h = d[kind] * scale;
        if (h > 0) {
          y -= h;
          group.appendChild(svg("rect", { x: x, y: y, width: w, height: h, fill: COLORS[kind], "data-kind": kind, "data-count": d[kind] }));
        }
      });
      if (days.length <= 31 && (days.length <= 10 || i % Math.ceil(days.length / 10) === 0)) {
        group.appendChild(svg("text", { x: x + w / 2, y: height - 6, "text-anchor": "middle" }, d.day.slice(5)));
      }
      chart.appendChild(group);
    });
    // The auto-answer rate of each day with turns, on a 0-100% scale.
    var points = [];
    days.forEach(function (d, i) {
      if (d.auto_answer_rate === null) return;
      var x = left + i * step + step / 2, y = height - bottom - d.auto_answer_rate * (height - bottom - top);
      points.push(x + "," + y);
      chart.appendChild(svg("circle", { cx: x, cy: y, r: 3, fill: COLORS.rate, "class": "rate-point", "data-rate": d.auto_answer_rate }));
    });
    if (points.length > 1) chart.appendChild(svg("polyline", { points: points.join(" "), fill: "none", stroke: COLORS.rate, "stroke-width": 2 }));
    box.appendChild(chart);
    var legend = $("daily-legend");
    legend.textContent = "";
    [["answered", "answered"], ["clarified", "clarified"], ["handed_off", "handedOff"], ["rate", "autoRate"]].forEach(function (k) {
      var item = el("span");
      // NOTE: SVG attributes, not inline styles, which the page's CSP forbids.
      var swatch = item.appendChild(svg("svg", { width: 10, height: 10, "class": "swatch" }));
      swatch.appendChild(svg("rect", { width: 10, height: 10, rx: 2, fill: COLORS[k[0]] }));
      item.appendChild(document.createTextNode(t[k[1]]));
      legend.appendChild(item);
    });
  }

  // Horizontal bars: label, bar, figure.
  function bars(box, rows, color) {
    box.textContent = "";
    if (!rows.length) { box.appendChild(el("p", { "class": "muted" }, t.none)); return; }
    var width = 440, row = 24, label = 130;
    var max = Math.max.apply(null, rows.map(function (r) { return r.value; })) || 1;
    var chart = svg("svg", { viewBox: "0 0 " + width + " " + (rows.length * row + 4), role: "img" });
    rows.forEach(function (r, i) {
      var y = i * row + 4;
      var g = svg("g", { "class": "bar-row", "data-key": r.key, "data-value": r.value });
      g.appendChild(svg("text", { x: 0, y: y + 14 }, r.label));
      g.appendChild(svg("rect", { x: label, y: y + 3, height: 14, rx: 3, fill: color,
        width: Math.max(1, (width - label - 70) * r.value / max) }));
      g.appendChild(svg("text", { x: width - 4, y: y + 14, "text-anchor": "end" }, r.text));
      chart.appendChild(g);
    });
    box.appendChild(chart);
  }

  function reasons() {
    bars($("reasons"), report.handoff_by_reason.map(function (r) {
      return { key: r.reason, label: t.reason[r.reason] || r.reason, value: r.count, text: r.count + " · " + pct(r.rate) };
    }), COLORS.handed_off);
  }

  function latency() {
    var l = report.latency_ms;
    bars($("latency"), [["p50", l.p50], ["p90", l.p90], ["p99", l.p99]].filter(function (p) { return p[1] !== null; })
      .map(function (p) { return { key: p[0], label: p[0].toUpperCase(), value: p[1], text: num(p[1], 1) + " ms" }; }), COLORS.rate);
  }

  function table(box, head, rows) {
    box.textContent = "";
    if (!rows.length) { box.appendChild(el("caption", { "class": "muted" }, t.none)); return; }
    var tr = el("tr");
    head.forEach(function (h) { tr.appendChild(el("th", { "class": h[1] ? "num" : "" }, t[h[0]])); });
    box.appendChild(el("thead")).appendChild(tr);
    var body = box.appendChild(el("tbody"));
    rows.forEach(function (cells) {
      var row = el("tr", { "data-key": cells.key });
      cells.values.forEach(function (c, i) {
        var td = el("td", { "class": head[i][1] ? "num" : "" });
        if (c instanceof Node) td.appendChild(c); else td.textContent = c;
        row.appendChild(td);
      });
      body.appendChild(row);
    });
  }

  function rateBar(rate) {
    var cell = el("div", { "class": "rate" });
    var bar = cell.appendChild(svg("svg", { viewBox: "0 0 100 8", preserveAspectRatio: "none", "class": "bar" }));
    bar.appendChild(svg("rect", { width: 100, height: 8, rx: 3, fill: "#eaeef2" }));
    bar.appendChild(svg("rect", { width: Math.round((rate || 0) * 100), height: 8, rx: 3, fill: COLORS.answered }));
    cell.appendChild(el("span", {}, pct(rate)));
    return cell;
  }

  function scenarios() {
    table($("scenarios"), [["scenario"], ["turns", 1], ["autoRate"], ["handoffRate", 1], ["notUsefulCol", 1]],
      report.scenarios.map(function (s) {
        return { key: s.scenario, values: [s.scenario, s.turns, rateBar(s.auto_answer_rate), pct(s.handoff_rate), s.not_useful] };
      }));
  }

  function channels() {
    table($("channels"), [["channelCol"], ["turns", 1], ["autoRate"], ["handoffRate", 1], ["p50", 1]],
      report.channels.map(function (c) {
        return { key: c.channel, values: [c.channel, c.turns, rateBar(c.auto_answer_rate), pct(c.handoff_rate), num(c.latency_ms_p50, 0) + " ms"] };
      }));
  }

  function agents() {
    var f = report.first_response_minutes, r = report.resolution_minutes;
    $("agent-work").textContent = fill(t.agentWork, [num(f.p50, 1), num(f.p90, 1), num(r.p50, 1), num(r.p90, 1)]);
    // A first reply slower than twice the team's median stands out.
    var slow = f.p50 === null ? Infinity : 2 * f.p50;
    var rows = function (groups) {
      return groups.map(function (g) {
        var first = el("span", { "class": g.first_response_minutes_p50 > slow ? "slow" : "" }, num(g.first_response_minutes_p50, 1));
        return { key: g.name, values: [g.name, g.tickets, g.resolved, first, num(g.resolution_minutes_p50, 1), pct(g.reopen_rate)] };
      });
    };
    var head = [["tickets", 1], ["resolved", 1], ["firstResponse", 1], ["resolution", 1], ["reopen", 1]];
    table($("agents"), [["agent"]].concat(head), rows(report.agents));
    table($("queues"), [["queue"]].concat(head), rows(report.queues));
  }

  function questions() {
    var list = $("questions");
    list.textContent = "";
    report.top_questions.forEach(function (g) {
      var item = el("li", { "data-count": g.count });
      item.appendChild(el("strong", {}, g.representative));
      item.appendChild(document.createTextNode(" · " + g.count + t.askedTimes + " · " + g.intent));
      if (g.examples.length > 1) item.appendChild(el("div", { "class": "examples" }, g.examples.slice(1).join(" / ")));
      list.appendChild(item);
    });
    if (!report.top_questions.length) list.appendChild(el("li", { "class": "muted" }, t.none));
  }

  function notUseful() {
    table($("not-useful"), [["intent"], ["count", 1], ["rate", 1], ["answer"], ["comments"], ["fix"]],
      report.not_useful.map(function (n) {
        var link = el("a", { href: "/console?tab=optimise&intent=" + encodeURIComponent(n.intent) }, t.fix);
        return { key: n.intent, values: [n.intent, n.not_useful, pct(n.not_useful_rate), n.answer || "", n.comments.join(" / "), link] };
      }));
  }

  ["from", "to"].forEach(function (id) { $(id).addEventListener("input", function () { presetDays = null; }); });
  $("period").addEventListener("submit", function (e) { e.preventDefault(); load(); });
  document.querySelectorAll("[data-days]").forEach(function (b) {
    b.addEventListener("click", function () { setPeriod(Number(b.dataset.days)); load(); });
  });
  $("lang").addEventListener("click", function () {
    lang = lang === "zh" ? "en" : "zh";
    t = T[lang];
    localStorage.setItem("kefu_console_lang", lang);
    translate();
    if (report) render();
  });

  translate();
  setPeriod(7);
  fetch("/v1/auth/me", { credentials: "same-origin" }).then(function (r) { return r.ok ? r.json() : null; })
    .then(function (who) {
      if (!who || who.role === "bot") { $("signin").hidden = false; return; }
      $("board").hidden = false;
      load();
    }).catch(function () { $("signin").hidden = false; });
})();
