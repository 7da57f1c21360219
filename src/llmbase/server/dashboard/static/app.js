/* llmbase dashboard: one script, no build step. Pages fetch /ui/api/* with the API key
   from sessionStorage (Bearer) or, in local admin mode, without one. All data reaches the
   DOM as text nodes (never innerHTML). */
(function () {
  "use strict";

  const KEY = "llmbase.apiKey";
  const PAGES = [
    ["overview", "Overview"], ["requests", "Requests"], ["conversations", "Conversations"],
    ["runs", "Agent runs"], ["cache", "Cache"], ["budgets", "Budgets"], ["documents", "Documents"],
  ];
  const params = new URLSearchParams(location.search);
  const tenantParam = params.get("tenant");
  const page = location.pathname.replace(/^\/ui\/?/, "").split("/")[0] || "overview";

  // ---- formatting ----------------------------------------------------------------------
  const nf = new Intl.NumberFormat("en-US");
  const nf1 = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
  const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });
  function fmtInt(n) { return n == null ? "—" : (Math.abs(n) >= 1e6 ? compact.format(n) : nf.format(n)); }
  function fmtUsd(n) {
    if (n == null) return "—";
    const v = Number(n);
    const digits = v !== 0 && Math.abs(v) < 1 ? 4 : 2;
    return "$" + v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }
  function fmtMs(n) {
    if (n == null) return "—";
    if (n >= 10000) return nf1.format(n / 1000) + " s";
    return nf.format(Math.round(n)) + " ms";
  }
  function fmtPct(n) { return n == null ? "—" : nf1.format(n * 100) + "%"; }
  function fmtTime(s) {
    if (!s) return "—";
    const d = new Date(s);
    return d.toLocaleString("en-US", { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  }
  function fmtBytes(n) {
    if (n == null) return "—";
    const u = ["B", "KB", "MB", "GB", "TB"]; let i = 0; let v = n;
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return nf1.format(v) + " " + u[i];
  }
  function short(id) { return id ? String(id).slice(0, 8) : "—"; }

  // ---- DOM -----------------------------------------------------------------------------
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === "class") el.className = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "style") el.setAttribute("style", v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const kid of kids.flat()) {
      if (kid == null || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }
  const $ = (sel) => document.querySelector(sel);
  function fill(el, ...kids) {
    el.replaceChildren(...kids.flat(Infinity).filter((k) => k != null && k !== false));
  }
  function empty(icon, text, testid) {
    return h("div", { class: "empty", "data-testid": testid || "empty" }, h("div", { class: "big" }, icon), text);
  }
  function kpi(label, value, display, sub, testid) {
    return h("div", { class: "card kpi", "data-testid": testid, "data-value": value == null ? "" : value },
      h("div", { class: "label" }, label), h("div", { class: "value" }, display), sub ? h("div", { class: "sub" }, sub) : null);
  }
  function table(cols, rows, opts) {
    opts = opts || {};
    const head = h("tr", {}, cols.map((c) => h("th", { class: c.num ? "num" : "" }, c.label)));
    const body = rows.map((r) => {
      const tr = h("tr", { class: opts.onclick ? "clickable" : "", "data-testid": opts.rowid }, cols.map((c) => {
        const v = c.get(r);
        return h("td", { class: (c.num ? "num " : "") + (c.cls || "") }, v);
      }));
      if (opts.onclick) tr.addEventListener("click", () => opts.onclick(r, tr));
      return tr;
    });
    return h("table", { "data-testid": opts.testid }, h("thead", {}, head), h("tbody", {}, body));
  }
  function badge(s) { return h("span", { class: "badge " + s }, s); }
  function seg(options, current, onpick, testid) {
    return h("div", { class: "seg", "data-testid": testid }, options.map(([v, label]) =>
      h("button", { class: v === current ? "on" : "", "data-value": v, onclick: () => onpick(v) }, label)));
  }
  function setQuery(changes) {
    const q = new URLSearchParams(location.search);
    for (const [k, v] of Object.entries(changes)) { if (v == null || v === "") q.delete(k); else q.set(k, v); }
    const s = q.toString();
    history.replaceState(null, "", location.pathname + (s ? "?" + s : ""));
  }

  // ---- API -----------------------------------------------------------------------------
  class ApiError extends Error { constructor(status, body) { super((body && body.error && body.error.message) || ("HTTP " + status)); this.status = status; } }
  async function api(path, query) {
    const q = new URLSearchParams();
    if (tenantParam) q.set("tenant", tenantParam);
    for (const [k, v] of Object.entries(query || {})) if (v != null && v !== "") q.set(k, v);
    const s = q.toString();
    const headers = { Accept: "application/json" };
    const key = sessionStorage.getItem(KEY);
    if (key) headers.Authorization = "Bearer " + key;
    const res = await fetch("/ui/api/" + path + (s ? "?" + s : ""), { headers });
    let body = null;
    try { body = await res.json(); } catch (e) { body = null; }
    if (!res.ok) throw new ApiError(res.status, body);
    return body;
  }

  // ---- shell ---------------------------------------------------------------------------
  function renderNav(session) {
    const nav = $("#nav");
    fill(nav, ...PAGES.map(([slug, title]) => h("a", {
      href: "/ui/" + slug + (tenantParam ? "?tenant=" + encodeURIComponent(tenantParam) : ""),
      class: slug === page ? "active" : "", "data-testid": "nav-" + slug,
    }, title)));
    const who = $("#who");
    const tenant = session.tenant ? (session.tenant.name || session.tenant.slug) : short(session.tenant_id);
    fill(who,
      h("div", { "data-testid": "tenant" }, "Tenant: ", h("strong", {}, tenant)),
      h("div", {}, session.local_admin ? "Local admin mode" : "API key: " + session.scopes.join(", ")),
      session.local_admin ? null : h("button", { "data-testid": "sign-out", onclick: () => { sessionStorage.removeItem(KEY); location.reload(); } }, "Sign out"));
  }
  function showLogin(message) {
    $("#login").classList.remove("hidden");
    $("#login-error").textContent = message || "";
    $("#login-form").onsubmit = (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(KEY, $("#api-key").value.trim());
      location.reload();
    };
    $("#api-key").focus();
  }
  function title(text) { $("#title").textContent = text; document.title = text + " · llmbase"; }
  function toolbar(...kids) { fill($("#toolbar"), ...kids); }
  function content(...kids) { fill($("#page"), ...kids); }
  function failure(err) { return h("div", { class: "banner", "data-testid": "error" }, "Could not load: " + err.message); }

  // ---- charts --------------------------------------------------------------------------
  const charts = [];
  function chart(el, name, xs, series) {
    const width = Math.max(300, el.clientWidth - 8);
    const opts = {
      width, height: 200, legend: { show: true }, cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      axes: [{ stroke: "#6b7485", grid: { stroke: "#f0f2f5" } }, { stroke: "#6b7485", grid: { stroke: "#f0f2f5" }, size: 60 }],
      series: [{}].concat(series.map((s) => ({ label: s.label, stroke: s.color, width: 2, fill: s.fill || null, points: { show: xs.length < 3 }, value: (u, v) => (v == null ? "—" : s.fmt(v)) }))),
    };
    const u = new uPlot(opts, [xs].concat(series.map((s) => s.data)), el);
    el.setAttribute("data-testid", "chart-" + name);
    el.setAttribute("data-points", String(xs.length));
    charts.push([u, el]);
  }
  window.addEventListener("resize", () => { for (const [u, el] of charts) u.setSize({ width: Math.max(300, el.clientWidth - 8), height: 200 }); });

  // ---- pages ---------------------------------------------------------------------------
  const RANGES = [["24h", "24 hours"], ["7d", "7 days"], ["30d", "30 days"], ["90d", "90 days"]];

  async function overview() {
    title("Overview");
    const range = params.get("range") || "7d";
    toolbar(seg(RANGES, range, (v) => { setQuery({ range: v }); location.reload(); }, "range"));
    const [d, u] = await Promise.all([api("overview", { range }), api("overview/users", { range })]);
    d.by_user = u.by_user;
    const t = d.totals;
    const errRate = t.requests ? t.errors / t.requests : null;
    const kpis = h("div", { class: "grid kpis" },
      kpi("Requests", t.requests, fmtInt(t.requests), fmtInt(t.tokens) + " tokens", "kpi-requests"),
      kpi("Cost", t.cost_usd, fmtUsd(t.cost_usd), t.cost_unknown ? fmtInt(t.cost_unknown) + " calls without a price" : "all calls priced", "kpi-cost"),
      kpi("Errors", t.errors, fmtInt(t.errors), errRate == null ? "no calls" : fmtPct(errRate) + " error rate", "kpi-errors"),
      kpi("p50 latency", t.p50_ms, fmtMs(t.p50_ms), "mean " + fmtMs(t.mean_ms), "kpi-p50"),
      kpi("p95 latency", t.p95_ms, fmtMs(t.p95_ms), "within 5%", "kpi-p95"));
    if (!t.requests) {
      content(kpis, h("div", { class: "card" }, empty("○", "No requests in this range yet. Log calls with client.requests.log() or point an OpenTelemetry exporter at /v1/traces.", "empty-overview")));
      return;
    }
    const xs = d.series.map((r) => new Date(r.t).getTime() / 1000);
    const c1 = h("div", { class: "chart" }), c2 = h("div", { class: "chart" }), c3 = h("div", { class: "chart" });
    const charts = h("div", { class: "grid charts" },
      h("div", { class: "card" }, h("h2", {}, "Requests and errors"), c1),
      h("div", { class: "card" }, h("h2", {}, "Cost"), c2),
      h("div", { class: "card" }, h("h2", {}, "Latency p50 / p95"), c3));
    const breakdown = (rows, label, key, testid) => h("div", { class: "card" }, h("h2", {}, "By " + label),
      rows.length ? table([
        { label, get: key },
        { label: "Requests", num: true, get: (r) => fmtInt(r.requests) },
        { label: "Errors", num: true, get: (r) => fmtInt(r.errors) },
        { label: "Cost", num: true, get: (r) => fmtUsd(r.cost_usd) },
        ...(rows[0].p95_ms !== undefined ? [{ label: "p95", num: true, get: (r) => fmtMs(r.p95_ms) }] : [{ label: "Tokens", num: true, get: (r) => fmtInt(r.tokens) }]),
      ], rows, { testid }) : empty("—", "Nothing to break down.", testid + "-empty"));
    content(kpis, charts, h("div", { class: "grid tables" },
      breakdown(d.by_model, "model", (r) => r.key || "(none)", "by-model"),
      breakdown(d.by_type, "request type", (r) => r.key, "by-type"),
      breakdown(d.by_user, "user", (r) => r.external_id || (r.user_id ? short(r.user_id) : "(no user)"), "by-user")));
    chart(c1, "requests", xs, [
      { label: "requests", color: "#4f46e5", fill: "rgba(79,70,229,.08)", data: d.series.map((r) => r.requests), fmt: fmtInt },
      { label: "errors", color: "#dc2626", data: d.series.map((r) => r.errors), fmt: fmtInt }]);
    chart(c2, "cost", xs, [{ label: "cost", color: "#059669", fill: "rgba(5,150,105,.08)", data: d.series.map((r) => r.cost_usd), fmt: fmtUsd }]);
    chart(c3, "latency", xs, [
      { label: "p50", color: "#0ea5e9", data: d.series.map((r) => r.p50_ms), fmt: fmtMs },
      { label: "p95", color: "#f59e0b", data: d.series.map((r) => r.p95_ms), fmt: fmtMs }]);
  }

  async function requests() {
    title("Requests");
    const f = { range: params.get("range") || "7d", model: params.get("model") || "", status: params.get("status") || "", request_type: params.get("request_type") || "", user: params.get("user") || "" };
    const facets = await api("requests/facets");
    const apply = () => { setQuery(f); load(null, true); };
    const sel = (name, options, label) => {
      const s = h("select", { "data-testid": "filter-" + name, onchange: (e) => { f[name] = e.target.value; apply(); } },
        h("option", { value: "" }, label), options.map((o) => h("option", { value: o }, o)));
      s.value = f[name];
      return s;
    };
    const userBox = h("input", { placeholder: "user (external id)", value: f.user, "data-testid": "filter-user", onchange: (e) => { f.user = e.target.value.trim(); apply(); } });
    const rangeSel = h("select", { "data-testid": "filter-range", onchange: (e) => { f.range = e.target.value; apply(); } }, RANGES.map(([v, l]) => h("option", { value: v }, "Last " + l)));
    rangeSel.value = f.range;
    const filters = h("div", { class: "filters" }, rangeSel, sel("model", facets.models, "All models"), sel("status", facets.statuses, "All statuses"), sel("request_type", facets.request_types, "All types"), userBox);
    const list = h("div", { class: "card" });
    const detail = h("div", { class: "card", "data-testid": "request-detail" }, empty("○", "Select a request to see its raw request and response."));
    content(filters, h("div", { class: "split wide-left" }, list, detail));
    let rows = [];
    let seq = 0;  // the latest load wins: an older answer arriving late is dropped
    async function load(cursor, reset) {
      const mine = ++seq;
      let d;
      try { d = await api("requests", { ...f, cursor }); } catch (err) { if (mine === seq) fill(list, failure(err)); return; }
      if (mine !== seq) return;
      rows = reset ? d.items : rows.concat(d.items);
      if (!rows.length) { fill(list, empty("○", "No requests match these filters.", "empty-requests")); return; }
      const tbl = table([
        { label: "Time", get: (r) => fmtTime(r.created_at), cls: "mono nowrap" },
        { label: "Model", get: (r) => r.model || "—", cls: "nowrap" },
        { label: "Type", get: (r) => r.request_type },
        { label: "Status", get: (r) => badge(r.status) },
        { label: "User", get: (r) => r.user_external_id || (r.user_id ? short(r.user_id) : "—") },
        { label: "Latency", num: true, get: (r) => fmtMs(r.latency_ms) },
        { label: "Tokens", num: true, get: (r) => fmtInt(r.tokens_total) },
        { label: "Cost", num: true, get: (r) => fmtUsd(r.cost_usd) },
      ], rows, { testid: "requests-table", rowid: "request-row", onclick: (r, tr) => { tbl.querySelectorAll("tr.selected").forEach((x) => x.classList.remove("selected")); tr.classList.add("selected"); show(r); } });
      fill(list, h("div", { class: "muted", "data-testid": "requests-count" }, rows.length + (d.next_cursor ? "+" : "") + " requests"), tbl,
        d.next_cursor ? h("div", { class: "more" }, h("button", { "data-testid": "load-more", onclick: () => load(d.next_cursor, false) }, "Load more")) : null);
    }
    async function show(r) {
      fill(detail, h("div", { class: "loading" }, "Loading…"));
      let q;
      try { q = await api("requests/" + r.id, { at: r.created_at }); } catch (err) { fill(detail, failure(err)); return; }
      const kv = [["Id", q.id], ["Time", fmtTime(q.created_at)], ["Provider / model", (q.provider || "—") + " / " + (q.model || "—")], ["Status", q.status + (q.error_kind ? " (" + q.error_kind + ")" : "")],
        ["Latency", fmtMs(q.latency_ms) + (q.ttft_ms != null ? " · TTFT " + fmtMs(q.ttft_ms) : "")], ["Tokens", fmtInt(q.tokens_prompt) + " in / " + fmtInt(q.tokens_completion) + " out"],
        ["Cost", fmtUsd(q.cost_usd) + (q.cache_hit ? " · cache hit" : "")], ["User", q.user_external_id || q.user_id || "—"], ["Conversation", q.conversation_id || "—"], ["Run", q.run_id ? q.run_id + " #" + q.iteration : "—"]];
      if (q.error_message) kv.push(["Error", q.error_message]);
      fill(detail, h("h2", {}, "Request ", h("span", { class: "mono" }, short(q.id))),
        h("div", { class: "kv" }, kv.flatMap(([k, v]) => [h("div", {}, k), h("div", { class: k === "Id" ? "mono" : "" }, v)])),
        h("h2", {}, "Request body"), h("pre", { class: "json", "data-testid": "request-body" }, q.request_body == null ? "(none)" : JSON.stringify(q.request_body, null, 2)),
        h("h2", { style: "margin-top:14px" }, "Response body"), h("pre", { class: "json", "data-testid": "response-body" }, q.response_body == null ? "(none)" : JSON.stringify(q.response_body, null, 2)),
        q.bodies_truncated ? h("p", { class: "muted" }, "Bodies were truncated to the size cap.") : null);
    }
    await load(null, true);
  }

  async function conversations() {
    title("Conversations");
    const list = h("div", { class: "card" });
    const detail = h("div", { class: "card", "data-testid": "conversation-detail" }, empty("○", "Select a conversation to read it."));
    content(h("div", { class: "split" }, list, detail));
    let rows = [];
    async function load(cursor) {
      const d = await api("conversations", { cursor, archived: "" });
      rows = rows.concat(d.items);
      if (!rows.length) { fill(list, empty("○", "No conversations yet.", "empty-conversations")); return; }
      const tbl = table([
        { label: "Title", get: (r) => r.title || h("span", { class: "muted" }, "Untitled") },
        { label: "Messages", num: true, get: (r) => fmtInt(r.message_count) },
        { label: "Cost", num: true, get: (r) => fmtUsd(r.total_cost_usd) },
        { label: "Updated", get: (r) => fmtTime(r.updated_at) },
      ], rows, { testid: "conversations-table", rowid: "conversation-row", onclick: (r, tr) => { tbl.querySelectorAll("tr.selected").forEach((x) => x.classList.remove("selected")); tr.classList.add("selected"); setQuery({ id: r.id }); show(r.id); } });
      fill(list, tbl, d.next_cursor ? h("div", { class: "more" }, h("button", { onclick: () => load(d.next_cursor) }, "Load more")) : null);
    }
    async function show(id) {
      fill(detail, h("div", { class: "loading" }, "Loading…"));
      let d;
      try { d = await api("conversations/" + id); } catch (err) { fill(detail, failure(err)); return; }
      const c = d.conversation, s = d.summary;
      const fb = Object.fromEntries(d.feedback_by_message.map((m) => [m.message_id, m]));
      const comments = {};
      for (const f of d.feedback) if (f.comment) (comments[f.message_id] = comments[f.message_id] || []).push(f);
      fill(detail,
        h("h2", {}, c.title || "Untitled conversation"),
        h("div", { class: "kv" },
          h("div", {}, "Model"), h("div", {}, c.model || "—"),
          h("div", {}, "Messages"), h("div", {}, fmtInt(c.message_count)),
          h("div", {}, "Tokens / cost"), h("div", {}, fmtInt(c.total_tokens) + " / " + fmtUsd(c.total_cost_usd)),
          h("div", {}, "Feedback"), h("div", { "data-testid": "conversation-feedback" }, "▲ " + s.thumbs_up + " up  ▼ " + s.thumbs_down + " down" + (s.score_avg != null ? "  score " + nf1.format(s.score_avg) : "") + "  · " + s.comment_count + " comments")),
        ...renderMessages(d, fb, comments));
    }
    function renderMessages(d, fb, comments) {
      if (!d.history.length) return [empty("—", "No messages in this conversation.")];
      return d.history.map((m) => {
        const f = fb[m.id];
        return h("div", { class: "msg " + m.role, "data-testid": "message" },
          h("div", { class: "meta" }, h("strong", {}, m.role), h("span", {}, "#" + m.seq), m.model ? h("span", {}, m.model) : null, m.token_count != null ? h("span", {}, fmtInt(m.token_count) + " tokens") : null, h("span", {}, fmtTime(m.created_at))),
          h("div", { class: "content" }, m.content),
          f ? h("div", { class: "fb", "data-testid": "message-feedback" }, h("span", { class: "up", title: "thumbs up" }, "▲ " + f.thumbs_up), h("span", { class: "down", title: "thumbs down" }, "▼ " + f.thumbs_down)) : null,
          (comments[m.id] || []).map((x) => h("div", { class: "comment" }, "“" + x.comment + "” — " + (x.user_external_id || "user"))));
      });
    }
    await load(null);
    const id = params.get("id");
    if (id) show(id);
  }

  async function runs() {
    title("Agent runs");
    const list = h("div", { class: "card" });
    const detail = h("div", { class: "card", "data-testid": "run-detail" }, empty("○", "Select a run to see its iterations."));
    const stats = h("div", { class: "card", style: "margin-top:16px" });
    content(h("div", { class: "split" }, list, detail), stats);
    const d = await api("runs");
    if (!d.items.length) fill(list, empty("○", "No agent runs yet. Record them with client.run(...).", "empty-runs"));
    else {
      const tbl = table([
        { label: "Name", get: (r) => r.name || "—" },
        { label: "Status", get: (r) => badge(r.status) },
        { label: "Iterations", num: true, get: (r) => fmtInt(r.iteration_count) },
        { label: "Total", num: true, get: (r) => fmtMs(r.total_ms) },
        { label: "Started", get: (r) => fmtTime(r.started_at) },
      ], d.items, { testid: "runs-table", rowid: "run-row", onclick: (r, tr) => { tbl.querySelectorAll("tr.selected").forEach((x) => x.classList.remove("selected")); tr.classList.add("selected"); show(r.id); } });
      fill(list, tbl);
    }
    async function show(id) {
      let r;
      try { r = await api("runs/" + id); } catch (err) { fill(detail, failure(err)); return; }
      const max = Math.max(1, ...r.iterations.map((i) => Math.max(i.total_ms || 0, (i.api_ms || 0) + (i.tool_ms || 0))));
      const rowsEl = r.iterations.map((i) => {
        const total = Math.max(i.total_ms || 0, (i.api_ms || 0) + (i.tool_ms || 0));
        return h("div", { class: "row", "data-testid": "iteration" },
          h("div", { class: "muted" }, "#" + i.iteration),
          h("div", { class: "bar", style: "width:" + Math.max(2, (100 * total) / max) + "%" },
            h("div", { class: "api", style: "width:" + (total ? (100 * i.api_ms) / total : 0) + "%", title: "API " + fmtMs(i.api_ms) }),
            h("div", { class: "tool", style: "width:" + (total ? (100 * i.tool_ms) / total : 0) + "%", title: "tools " + fmtMs(i.tool_ms) })),
          h("div", { class: "mono" }, fmtMs(i.api_ms) + " / " + fmtMs(i.tool_ms)));
      });
      fill(detail, h("h2", {}, (r.name || "Run") + " ", badge(r.status)),
        h("div", { class: "kv" }, h("div", {}, "Total"), h("div", {}, fmtMs(r.total_ms)), h("div", {}, "API time"), h("div", { "data-testid": "run-api" }, fmtMs(r.api_ms)),
          h("div", {}, "Tool time"), h("div", { "data-testid": "run-tool" }, fmtMs(r.tool_ms)), h("div", {}, "User"), h("div", {}, r.user_external_id || "—")),
        h("div", { class: "legend" }, h("span", {}, h("span", { class: "swatch", style: "background:var(--api)" }), "API time"), h("span", {}, h("span", { class: "swatch", style: "background:var(--tool)" }), "tool time")),
        rowsEl.length ? h("div", { class: "timeline", "data-testid": "timeline" }, rowsEl) : empty("—", "No iterations recorded."),
        r.tool_calls.length ? [h("h2", { style: "margin-top:14px" }, "Tool calls"), table([
          { label: "Iter.", num: true, get: (t) => t.iteration ?? "—" }, { label: "Tool", get: (t) => t.name }, { label: "Status", get: (t) => badge(t.status) }, { label: "Duration", num: true, get: (t) => fmtMs(t.duration_ms) }], r.tool_calls, { testid: "tool-calls" })] : null);
    }
    const s = await api("runs/stats");
    fill(stats, h("h2", {}, "Performance by iteration number (30 days)"), s.iterations.length ? table([
      { label: "Iteration", num: true, get: (r) => r.iteration }, { label: "Samples", num: true, get: (r) => fmtInt(r.samples) },
      { label: "Avg API", num: true, get: (r) => fmtMs(r.avg_api_ms) }, { label: "Median API", num: true, get: (r) => fmtMs(r.median_api_ms) },
      { label: "Avg tools", num: true, get: (r) => fmtMs(r.avg_tool_ms) }, { label: "Avg total", num: true, get: (r) => fmtMs(r.avg_total_ms) }], s.iterations, { testid: "iteration-stats" })
      : empty("—", "Not enough iterations yet."));
  }

  async function cache() {
    title("Cache");
    const s = (await api("cache")).stats;
    const kpis = h("div", { class: "grid kpis" },
      kpi("Hit rate", s.hit_rate, fmtPct(s.hit_rate), fmtInt(s.hits) + " hits / " + fmtInt(s.stores) + " stores", "kpi-hit-rate"),
      kpi("Cost saved", s.cost_saved_usd, fmtUsd(s.cost_saved_usd), "hits × original cost", "kpi-cost-saved"),
      kpi("Entries", s.entries, fmtInt(s.entries), fmtInt(s.expired) + " expired", "kpi-entries"),
      kpi("Size", s.bytes, fmtBytes(s.bytes), s.last_hit_at ? "last hit " + fmtTime(s.last_hit_at) : "no hits yet", "kpi-bytes"));
    content(kpis, s.entries ? null : h("div", { class: "card" }, empty("○", "The cache is empty. Enable it with client.cache or the instrumentation's cache policy.", "empty-cache")));
  }

  async function budgets() {
    title("Budgets");
    const d = await api("budgets");
    if (!d.budgets.length) { content(h("div", { class: "card" }, empty("○", "No budgets. Set one with client.budgets.set(\"50.00\").", "empty-budgets"))); return; }
    const byBudget = {};
    for (const u of d.usage) (byBudget[u.budget_id] = byBudget[u.budget_id] || []).push(u);
    const rows = d.budgets.flatMap((b) => (byBudget[b.id] || [{ budget_id: b.id, cap_usd: b.cap_usd, spent_usd: 0, reserved_usd: 0, remaining_usd: b.cap_usd, mode: b.mode }]).map((u) => ({ b, u })));
    content(h("div", { class: "card" }, h("h2", {}, "This month"), table([
      { label: "Budget", get: ({ b, u }) => b.per_user ? "Each user" + (u.user_external_id ? ": " + u.user_external_id : "") : b.user_id ? "User " + (u.user_external_id || short(b.user_id)) : "Tenant" },
      { label: "Mode", get: ({ b }) => badge(b.mode) },
      { label: "Usage", get: ({ u }) => {
        const cap = Number(u.cap_usd), sp = Number(u.spent_usd), rs = Number(u.reserved_usd);
        return h("div", { class: "progress" + (sp >= cap ? " over" : "") }, h("div", { class: "spent", style: "width:" + Math.min(100, (100 * sp) / cap) + "%" }), h("div", { class: "reserved", style: "width:" + Math.min(100, (100 * rs) / cap) + "%" }));
      } },
      { label: "Spent", num: true, get: ({ u }) => h("span", { "data-testid": "budget-spent", "data-value": u.spent_usd }, fmtUsd(u.spent_usd)) },
      { label: "Reserved", num: true, get: ({ u }) => fmtUsd(u.reserved_usd) },
      { label: "Cap", num: true, get: ({ u }) => h("span", { "data-testid": "budget-cap", "data-value": u.cap_usd }, fmtUsd(u.cap_usd)) },
      { label: "Remaining", num: true, get: ({ u }) => fmtUsd(u.remaining_usd) },
    ], rows, { testid: "budgets-table", rowid: "budget-row" })));
  }

  async function documents() {
    title("Documents");
    const d = await api("collections");
    if (!d.items.length) { content(h("div", { class: "card" }, empty("○", "No document collections yet. Import with `llmbase docs import`.", "empty-documents"))); return; }
    const pick = h("select", { "data-testid": "search-collection" }, d.items.map((c) => h("option", { value: c.name }, c.name)));
    const box = h("input", { placeholder: "Search documents…", style: "flex:1", "data-testid": "search-box" });
    const results = h("div", { "data-testid": "search-results" });
    const form = h("form", { class: "filters", onsubmit: async (ev) => {
      ev.preventDefault();
      if (!box.value.trim()) return;
      fill(results, h("div", { class: "loading" }, "Searching…"));
      try {
        const r = await api("collections/" + encodeURIComponent(pick.value) + "/search", { q: box.value.trim(), k: 10 });
        fill(results, ...(r.hits.length ? r.hits.map((x) => h("div", { class: "hit", "data-testid": "hit" },
          h("div", { class: "title" }, x.title || x.external_id || short(x.document_id), " ", h("span", { class: "muted" }, "score " + x.score.toFixed(3))),
          h("div", {}, x.content.length > 400 ? x.content.slice(0, 400) + "…" : x.content))) : [empty("○", "No matches.", "empty-search")]));
      } catch (err) { fill(results, failure(err)); }
    } }, pick, box, h("button", { class: "primary", type: "submit", "data-testid": "search-button" }, "Search"));
    content(h("div", { class: "card", style: "margin-bottom:16px" }, h("h2", {}, "Collections"), table([
      { label: "Name", get: (c) => c.name }, { label: "Documents", num: true, get: (c) => fmtInt(c.stats ? c.stats.documents : null) },
      { label: "Chunks", num: true, get: (c) => fmtInt(c.stats ? c.stats.chunks : null) }, { label: "Embedding", get: (c) => c.embedding_model || "—" },
      { label: "Index", get: (c) => c.index_type }, { label: "Size", num: true, get: (c) => fmtBytes(c.stats ? c.stats.table_bytes + c.stats.index_bytes : null) }], d.items, { testid: "collections-table" })),
    h("div", { class: "card" }, h("h2", {}, "Search (full text)"), form, results));
  }

  const RENDER = { overview, requests, conversations, runs, cache, budgets, documents };

  async function main() {
    let session;
    try { session = await api("session"); } catch (err) {
      if (err.status === 401) { showLogin(sessionStorage.getItem(KEY) ? "That key was not accepted." : ""); return; }
      content(failure(err)); return;
    }
    renderNav(session);
    const render = RENDER[page] || overview;
    content(h("div", { class: "loading" }, "Loading…"));
    try { await render(); document.body.setAttribute("data-ready", "1"); } catch (err) { content(failure(err)); document.body.setAttribute("data-ready", "error"); }
  }
  main();
})();
