// leadflow dashboard: vanilla JS, no build step, no CDN. Reads /api/*, refreshes in place.
"use strict";

(() => {
  const TOKEN_KEY = "leadflow.token";
  const TABS = ["overview", "jobs", "leads", "controls"];
  const HEALTH = ["healthy", "degraded", "failed"];

  const state = {
    tab: "overview",
    ui: { refresh_seconds: 5, controls_enabled: true, jobs: ["harvest", "score", "qualify", "route", "contact"] },
    job: "harvest",
    tenant: new URLSearchParams(location.search).get("tenant") || "",
    runsShown: 30,
    leads: { offset: 0, limit: 50, total: 0 },
    selectedLead: null,
    busy: false,
  };

  // --- small helpers -----------------------------------------------------------------

  const $ = (sel) => document.querySelector(sel);

  /** Build an element; attributes starting with "on" become listeners; text is never parsed as HTML. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else if (key === "class") el.className = value;
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  const svgNS = "http://www.w3.org/2000/svg";
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(svgNS, tag);
    for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function fill(container, ...children) {
    container.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  }

  const fmtNum = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
  const fmtPct = (p) => (p === null || p === undefined ? "–" : `${Number(p).toFixed(1)}%`);

  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
    if (seconds < 90) return `${seconds.toFixed(1)} s`;
    if (seconds < 5400) return `${(seconds / 60).toFixed(1)} min`;
    return `${(seconds / 3600).toFixed(1)} h`;
  }

  /** Hours until the next run; under an hour in minutes ("every 2m" schedules). */
  function inHours(hours) {
    return hours < 1 ? `in ${Math.max(1, Math.round(hours * 60))} min` : `in ${hours.toFixed(1)} h`;
  }

  function relTime(iso) {
    if (!iso) return "never";
    const diff = (Date.now() - Date.parse(iso)) / 1000;
    const ahead = diff < 0;
    const a = Math.abs(diff);
    let text;
    if (a < 45) text = `${Math.round(a)} s`;
    else if (a < 5400) text = `${Math.round(a / 60)} min`;
    else if (a < 172800) text = `${(a / 3600).toFixed(1)} h`;
    else text = `${Math.round(a / 86400)} d`;
    return ahead ? `in ${text}` : `${text} ago`;
  }

  function fmtTime(iso) {
    if (!iso) return "–";
    const d = new Date(iso);
    return d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  function errorText(body, status) {
    if (body && typeof body.message === "string") return body.message;
    if (body && typeof body.detail === "string") return body.detail;
    return `request failed with HTTP ${status}`;
  }

  function tokenOnce() {
    return declined ? Promise.resolve(null) : askToken();
  }

  /** GET with the stored token; a 401 forgets it and asks for one once (reads need a token). */
  async function getJSON(path) {
    for (let attempt = 0; attempt < 2; attempt++) {
      const token = sessionStorage.getItem(TOKEN_KEY);
      const headers = { Accept: "application/json" };
      if (token) headers.Authorization = `Bearer ${token}`;
      const res = await fetch(path, { headers });
      let body = null;
      try { body = await res.json(); } catch (_) { /* not JSON */ }
      if (res.status === 401 && attempt === 0) {
        sessionStorage.removeItem(TOKEN_KEY);
        showTokenState();
        if (await tokenOnce()) continue;
      }
      if (!res.ok) throw new Error(errorText(body, res.status));
      return body;
    }
    throw new Error("this dashboard needs a token to show lead data");
  }

  /** A link from `leadflow dev` carries the token in the fragment (never sent to the server):
   * keep it for this tab and take it out of the address bar. */
  function takeTokenFromLink() {
    const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (!match) return;
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }

  function statusCell(status) {
    return h("td", { class: `status status-${status}` }, status);
  }

  function emptyState(text, job) {
    return h("div", { class: "empty", "data-testid": "empty-state" }, text,
      job ? h("button", { type: "button", onclick: () => goRunNow(job) }, `Run now on ${job}`) : null);
  }

  function goRunNow(job) {
    location.hash = "#controls";
    showTab("controls"); // now, so the field can take the focus (hashchange follows later)
    const input = document.getElementById(`max-leads-${job}`);
    if (input) input.focus();
  }

  // --- token and controls ----------------------------------------------------------

  let asking = null; // one token dialog at a time, shared by every request that needs it
  let declined = false; // cancelled once: the auto-refresh must not ask again and again

  function askToken() {
    if (asking) return asking;
    const dialog = $("#token-dialog");
    const input = $("#token-input");
    input.value = "";
    asking = new Promise((resolve) => {
      dialog.addEventListener("close", () => {
        const token = dialog.returnValue === "ok" ? input.value.trim() : "";
        if (token) sessionStorage.setItem(TOKEN_KEY, token);
        declined = !token;
        asking = null;
        showTokenState();
        resolve(token || null);
      }, { once: true });
      dialog.returnValue = "";
      dialog.showModal();
      input.focus();
    });
    return asking;
  }

  function confirmAction(title, text) {
    const dialog = $("#confirm-dialog");
    $("#confirm-title").textContent = title;
    $("#confirm-text").textContent = text;
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.returnValue = "";
      dialog.showModal();
    });
  }

  function showTokenState() {
    $("#token-state").textContent = sessionStorage.getItem(TOKEN_KEY) ? "entered (kept in this tab)" : "not entered";
  }

  /** POST with the bearer token. A 401 forgets the token and asks for one; after two tokens
   * typed in and refused it gives up (a stored read-only token does not count). */
  async function control(path, body) {
    let asked = 0;
    for (;;) {
      let token = sessionStorage.getItem(TOKEN_KEY);
      if (!token) {
        if (asked === 2) return { ok: false, text: "wrong token" };
        token = await askToken();
        asked += 1;
        if (!token) return { ok: false, text: "cancelled: no token entered" };
      }
      let res;
      try {
        res = await fetch(path, {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json", Authorization: `Bearer ${token}` },
          body: JSON.stringify(body || {}),
        });
      } catch (err) {
        return { ok: false, text: `the dashboard did not answer (${err.message}); is it running?` };
      }
      let data = null;
      try { data = await res.json(); } catch (_) { /* not JSON */ }
      if (res.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        showTokenState();
        continue;
      }
      if (!res.ok) return { ok: false, text: errorText(data, res.status) };
      return { ok: true, data };
    }
  }

  function showResult(el, result, okText) {
    el.classList.remove("ok", "err");
    el.classList.add(result.ok ? "ok" : "err");
    el.textContent = result.ok ? okText(result.data) : result.text;
    if (result.ok) el.dataset.eventId = result.data.event_id;
  }

  const shortId = (id) => String(id).slice(0, 8);

  // --- tenant filter -----------------------------------------------------------------

  /** ``path`` with the chosen tenant as ?tenant= (all tenants: unchanged). */
  function forTenant(path) {
    if (!state.tenant) return path;
    return `${path}${path.includes("?") ? "&" : "?"}tenant=${encodeURIComponent(state.tenant)}`;
  }

  async function loadTenantOptions() {
    const list = await getJSON("api/tenants");
    const select = $("#tenant");
    const names = list.map((t) => t.tenant_id);
    if (state.tenant && !names.includes(state.tenant)) names.push(state.tenant); // a link to a tenant not seen yet
    const health = Object.fromEntries(list.map((t) => [t.tenant_id, t.health]));
    fill(select, h("option", { value: "" }, "All tenants"), names.map((name) => h("option", {
      value: name, "data-health": health[name] || "unknown",
    }, health[name] && health[name] !== "healthy" ? `${name} (${health[name]})` : name)));
    select.value = state.tenant;
    select.hidden = list.length === 0 && !state.tenant; // one implicit tenant: nothing to pick
  }

  function pickTenant(name) {
    state.tenant = name;
    state.leads.offset = 0;
    state.selectedLead = null;
    $("#lead-detail").hidden = true;
    $(".leads-layout").classList.add("no-detail");
    const url = new URL(location.href);
    if (name) url.searchParams.set("tenant", name); else url.searchParams.delete("tenant");
    history.replaceState(null, "", url); // a link to this view shows the same tenant
    document.body.dataset.tenant = name;
    document.body.dataset.loaded = "";
    refresh();
  }

  // --- overview ----------------------------------------------------------------------

  function setOverallHealth(scheduler) {
    const badge = $("#overall-health");
    const health = scheduler && scheduler.overall_health ? scheduler.overall_health : "unknown";
    badge.className = `badge badge-${HEALTH.includes(health) ? health : "unknown"}`;
    badge.dataset.health = health;
    badge.textContent = health;
  }

  function orderedJobs(scheduler, metrics) {
    const names = [...state.ui.jobs];
    for (const name of Object.keys((scheduler && scheduler.jobs) || {})) if (!names.includes(name)) names.push(name);
    for (const name of Object.keys(metrics || {})) if (!names.includes(name)) names.push(name);
    return names;
  }

  function jobCard(job, sched, metrics, backlog) {
    const runs = metrics ? metrics.total_runs : 0;
    const health = runs ? (metrics.health_status || (sched && sched.health) || "healthy") : "none";
    const enabled = !sched || sched.enabled !== false;
    const next = !enabled ? "disabled"
      : sched && sched.hours_until_next_run !== null && sched.hours_until_next_run !== undefined
        ? inHours(Number(sched.hours_until_next_run)) : "–";
    const last = (metrics && metrics.last_run_at) || (sched && sched.last_run) || null;
    const row = (label, value, key) => [h("dt", {}, label), h("dd", { "data-testid": `card-${job}-${key}` }, value)];
    return h("article", { class: `card health-${health}`, "data-testid": `job-card-${job}`, "data-health": health },
      h("h3", {}, job, h("span", { class: `badge badge-${runs ? health : "unknown"}`, "data-testid": `card-${job}-health` },
        runs ? health : "no runs")),
      h("dl", {},
        row("Last run", last ? relTime(last) : "never", "last-run"),
        row("Next run", next, "next-run"),
        row("Success rate", runs ? fmtPct(metrics.success_rate) : "–", "success-rate"),
        row("Failures in a row", fmtNum(metrics ? metrics.consecutive_failures : 0), "failures"),
        row("Runs", fmtNum(runs), "runs"),
        row("Leads processed", fmtNum(metrics ? metrics.total_leads_processed : 0), "processed"),
        row("Backlog", backlog === null || backlog === undefined ? "–" : fmtNum(backlog), "backlog")),
      runs ? null : emptyState(`No runs yet — press Run now on ${job}.`, job));
  }

  function renderFunnel(data) {
    const stages = data.funnel_stages || [];
    const total = stages.length ? stages[0].reached : 0;
    if (!total) {
      fill($("#funnel"), emptyState("No leads yet — press Run now on harvest to import the configured sources (or run `leadflow import leads.csv`).", "harvest"));
      return;
    }
    const rows = stages.map((stage) => h("div", { class: "funnel-row", "data-testid": `funnel-${stage.status}`, "data-reached": stage.reached },
      h("span", {}, stage.status),
      h("div", { class: "bar" }, h("span", { style: `width:${Math.max(1, (stage.reached / total) * 100)}%` })),
      h("span", { class: "count", "data-testid": `funnel-${stage.status}-count` }, fmtNum(stage.reached)),
      h("span", { class: "pct", "data-testid": `funnel-${stage.status}-pct` },
        stage.status === "NEW" ? `${fmtNum(stage.current)} waiting to be scored`
          : `${fmtPct(stage.conversion_pct)} of previous · ${fmtPct(stage.overall_pct)} of all · ${fmtNum(stage.current)} here now`)));
    fill($("#funnel"), rows,
      h("div", { class: "funnel-extra" }, "Rejected at qualification: ",
        h("b", { "data-testid": "funnel-REJECTED-count" }, fmtNum((data.funnel || {}).REJECTED || 0)),
        " · dead letters: ", h("b", { "data-testid": "dead-letter-count" }, fmtNum(data.dead_letter_count))));
  }

  function barChart(series, labels, options) {
    // series: [{name, color, values[]}] drawn as grouped bars with a y axis, drawn at the
    // container's pixel width so text keeps its size; few bars stay narrow (minSlots).
    const width = Math.max(280, options.width || 640), height = 220, left = 44, bottom = 24, top = 10;
    const n = Math.max(labels.length, options.minSlots || 0);
    const max = Math.max(1, ...series.flatMap((x) => x.values));
    const plotH = height - bottom - top;
    const slot = (width - left - 8) / Math.max(1, n);
    const barW = Math.max(2, (slot * 0.8) / series.length);
    const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": options.label });
    for (const frac of [0, 0.5, 1]) {
      const y = top + plotH * (1 - frac);
      svg.append(s("line", { class: "axis", x1: left, x2: width, y1: y, y2: y }));
      svg.append(s("text", { x: left - 6, y: y + 3, "text-anchor": "end" }, options.format(max * frac)));
    }
    labels.forEach((label, i) => {
      series.forEach((ser, j) => {
        const v = ser.values[i] || 0;
        const bh = (v / max) * plotH;
        const x = left + i * slot + slot * 0.1 + j * barW;
        const color = typeof ser.color === "function" ? ser.color(i) : ser.color;
        svg.append(s("rect", { x, y: top + plotH - bh, width: barW - 1, height: Math.max(bh, v ? 1 : 0), fill: color, rx: 2 },
          s("title", {}, `${label}: ${ser.name} ${options.format(v)}`)));
      });
      const every = Math.ceil(n / Math.max(2, Math.floor(width / 90)));
      if (i % every === 0) svg.append(s("text", { x: left + i * slot + slot / 2, y: height - 6, "text-anchor": "middle" }, label));
    });
    return svg;
  }

  function renderPerDay(days) {
    const created = days.map((d) => d.entered.NEW || 0);
    const contacted = days.map((d) => d.entered.CONTACTED || 0);
    if (!created.some(Boolean) && !contacted.some(Boolean)) {
      fill($("#per-day-chart"), emptyState("No leads in the last 14 days — press Run now on harvest.", "harvest"));
      return;
    }
    fill($("#per-day-chart"),
      barChart([{ name: "created", color: "#2f6fed", values: created }, { name: "contacted", color: "#1f9d55", values: contacted }],
        days.map((d) => d.day.slice(5)), { label: "Leads per day", format: (v) => fmtNum(Math.round(v)),
          width: $("#per-day-chart").clientWidth }),
      h("div", { class: "legend" }, h("span", {}, h("i", { style: "background:#2f6fed" }), "created"),
        h("span", {}, h("i", { style: "background:#1f9d55" }), "emails sent (contacted)")));
  }

  function runsTable(runs, withJob) {
    return h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, withJob ? h("th", {}, "Job") : null, h("th", {}, "Started"), h("th", {}, "Status"),
        h("th", {}, "Source"), h("th", { class: "num" }, "Duration"), h("th", { class: "num" }, "Processed"),
        h("th", { class: "num" }, "Succeeded"), h("th", { class: "num" }, "Failed"), h("th", {}, "Error"))),
      h("tbody", {}, runs.map((r) => h("tr", { "data-run-id": r.run_id, "data-testid": "run-row", "data-status": r.status },
        withJob ? h("td", {}, r.job_type) : null,
        h("td", { title: r.started_at || r.scheduled_for || "" }, fmtTime(r.started_at || r.scheduled_for)),
        statusCell(r.status),
        h("td", { title: r.requested_by || "" }, r.source),
        h("td", { class: "num" }, fmtDuration(r.duration_seconds)),
        h("td", { class: "num" }, fmtNum(r.leads_processed)),
        h("td", { class: "num" }, fmtNum(r.leads_succeeded)),
        h("td", { class: "num" }, fmtNum(r.leads_failed)),
        h("td", { class: "error" }, r.error ? `${r.reason ? r.reason + ": " : ""}${r.error}` : (r.status === "skipped" && r.reason ? r.reason : "")))))));
  }

  function renderAlerts(data) {
    const alerts = [];
    const p = data.projector || {};
    if (p.updated_at === null || p.updated_at === undefined) {
      alerts.push("The projector has not reported yet — start it with `leadflow run projector`; until then these numbers stay empty.");
    } else if (p.lag > 0) {
      alerts.push(`The projector is ${fmtNum(p.lag)} messages behind the log; numbers catch up in a moment.`);
    }
    if (data.dead_letter_count > 0) {
      alerts.push(`${fmtNum(data.dead_letter_count)} dead letters: inputs that could not be processed (GET /api/dead-letters lists them).`);
    }
    fill($("#alerts"), alerts.map((text) => h("div", { class: "notice" }, text)));
  }

  async function loadOverview() {
    const data = await getJSON(forTenant("api/dashboard"));
    setOverallHealth(data.scheduler_status);
    renderAlerts(data);
    const sched = data.scheduler_status.jobs || {};
    fill($("#job-cards"), orderedJobs(data.scheduler_status, data.job_metrics)
      .map((job) => jobCard(job, sched[job], data.job_metrics[job], (data.backlog || {})[job])));
    renderFunnel(data);
    renderPerDay(data.leads_per_day || []);
    fill($("#recent-runs"), data.recent_jobs.length ? runsTable(data.recent_jobs, true)
      : emptyState("No runs yet — press Run now on harvest.", "harvest"));
  }

  // --- jobs --------------------------------------------------------------------------

  function renderJobPicker() {
    fill($("#job-picker"), state.ui.jobs.map((job) => h("button", {
      type: "button", role: "tab", "aria-selected": job === state.job ? "true" : "false", "data-testid": `job-pick-${job}`,
      onclick: () => { state.job = job; state.runsShown = 30; renderJobPicker(); refresh(); },
    }, job)));
  }

  async function loadJobs() {
    const job = state.job;
    const [metrics, page, scheduler] = await Promise.all([
      getJSON(forTenant(`api/jobs/${job}/metrics`)),
      getJSON(forTenant(`api/jobs/${job}/runs?limit=${state.runsShown}`)),
      getJSON(forTenant("api/scheduler")),
    ]);
    if (job !== state.job) return; // the user picked another job meanwhile
    setOverallHealth(scheduler);
    const sched = (scheduler.jobs || {})[job] || {};
    const item = (label, value, key) => h("div", {}, h("b", { "data-testid": `job-${key}` }, value), h("span", {}, label));
    fill($("#job-summary"),
      item("health", metrics.total_runs ? metrics.health_status : "no runs", "health"),
      item("runs", fmtNum(metrics.total_runs), "runs"),
      item("success rate", metrics.total_runs ? fmtPct(metrics.success_rate) : "–", "success-rate"),
      item("leads processed", fmtNum(metrics.total_leads_processed), "processed"),
      item("avg duration", metrics.total_runs ? fmtDuration(metrics.average_duration_seconds) : "–", "avg-duration"),
      item("next run", sched.enabled === false ? "disabled" : sched.next_run ? relTime(sched.next_run) : "–", "next-run"));
    const runs = page.items;
    if (!runs.length) {
      const empty = `No runs of ${job} yet — press Run now on ${job}.`;
      fill($("#job-runs"), emptyState(empty, job));
      fill($("#duration-chart"), emptyState("Durations appear after the first run.", null));
    } else {
      fill($("#job-runs"), runsTable(runs, false));
      const timed = runs.filter((r) => r.duration_seconds !== null).slice(0, 40).reverse();
      const colors = { completed: "#1f9d55", failed: "#d64545", skipped: "#d98b00", running: "#2f6fed" };
      fill($("#duration-chart"), timed.length
        ? barChart([{ name: "duration", color: (i) => colors[timed[i].status] || "#98a2b3", values: timed.map((r) => r.duration_seconds) }],
          timed.map((r) => fmtTime(r.started_at).split(",").pop().trim()), {
            label: `${job} run durations`, format: (v) => (v >= 10 ? v.toFixed(0) : v.toFixed(2)),
            width: $("#duration-chart").clientWidth, minSlots: 20 })
        : emptyState("No finished run yet.", null));
    }
    const older = $("#older-runs");
    older.hidden = !page.next_before || state.runsShown >= 500;
  }

  // --- leads -------------------------------------------------------------------------

  async function loadCampaignOptions() {
    const list = await getJSON("api/campaigns");
    const select = $("#lead-campaign");
    const current = select.value;
    fill(select, h("option", { value: "" }, "Any campaign"),
      [...new Set(list.map((c) => c.campaign_id))].map((c) => h("option", { value: c }, c)));
    select.value = current;
    return list;
  }

  async function loadLeads() {
    const params = new URLSearchParams({ limit: state.leads.limit, offset: state.leads.offset });
    const q = $("#lead-q").value.trim();
    if (q) params.set("q", q);
    if ($("#lead-status").value) params.set("status", $("#lead-status").value);
    if ($("#lead-campaign").value) params.set("campaign", $("#lead-campaign").value);
    if (state.tenant) params.set("tenant", state.tenant);
    const [page] = await Promise.all([getJSON(`api/leads?${params}`), loadCampaignOptions()]);
    state.leads.total = page.total;
    if (!page.items.length) {
      const filtered = q || $("#lead-status").value || $("#lead-campaign").value;
      fill($("#leads-table"), emptyState(filtered ? "No lead matches — clear the search or the filters."
        : "No leads yet — press Run now on harvest to import the configured sources.", filtered ? null : "harvest"));
    } else {
      fill($("#leads-table"), h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, ["Email", "Name", "Company", "Campaign", "Status", "Score", "Updated"].map((t) =>
          h("th", { class: t === "Score" ? "num" : null }, t)))),
        h("tbody", {}, page.items.map((lead) => h("tr", {
          class: `clickable${lead.lead_id === state.selectedLead ? " selected" : ""}`, tabindex: 0,
          "data-lead-id": lead.lead_id, "data-testid": "lead-row",
          onclick: () => selectLead(lead.lead_id),
          onkeydown: (e) => { if (e.key === "Enter") selectLead(lead.lead_id); },
        },
          h("td", {}, lead.email), h("td", {}, [lead.first_name, lead.last_name].filter(Boolean).join(" ")),
          h("td", {}, lead.company || ""), h("td", {}, lead.campaign_id), statusCell(lead.status),
          h("td", { class: "num" }, lead.score === null ? "–" : lead.score),
          h("td", { title: lead.updated_at }, relTime(lead.updated_at))))))));
    }
    const first = page.total ? page.offset + 1 : 0;
    $("#leads-range").textContent = `${fmtNum(first)}–${fmtNum(page.offset + page.items.length)} of ${fmtNum(page.total)}`;
    $("#leads-prev").disabled = page.offset === 0;
    $("#leads-next").disabled = page.next_offset === null;
    if (state.selectedLead) await loadLead(state.selectedLead);
  }

  async function selectLead(id) {
    state.selectedLead = id;
    document.querySelectorAll("tr[data-lead-id]").forEach((tr) => tr.classList.toggle("selected", tr.dataset.leadId === id));
    await loadLead(id);
  }

  function eventDetail(ev) {
    const p = ev.payload || {};
    const lead = p.lead || {};
    switch (ev.type) {
      case "lead.created": return `imported from ${lead.source || "a source"}${p.source_line ? ` (line ${p.source_line})` : ""}`;
      case "lead.scored": return lead.score ? `score ${lead.score.value} (${lead.score.model_version})` : "scored";
      case "lead.qualified": return "qualified";
      case "lead.rejected": return `rejected: ${(p.reasons || []).join(", ")}`;
      case "lead.routed": return lead.route ? `segment ${lead.route.segment}, owner ${lead.route.owner}, sequence ${lead.route.sequence_id}` : "routed";
      case "lead.contacted": return `step ${p.step}${p.subject ? `: “${p.subject}”` : ""} via ${p.sender}`;
      default: return "";
    }
  }

  async function loadLead(id) {
    const panel = $("#lead-detail");
    let data;
    try {
      data = await getJSON(`api/leads/${id}`);
    } catch (err) {
      fill(panel, h("p", { class: "result err" }, err.message));
      panel.hidden = false;
      return;
    }
    if (state.selectedLead !== id) return;
    const l = data.lead;
    const fact = (label, value) => (value === null || value === undefined || value === "" ? [] : [h("dt", {}, label), h("dd", {}, value)]);
    fill(panel,
      h("div", { class: "row" }, h("h3", { "data-testid": "lead-detail-email" }, l.email),
        h("button", { class: "link", type: "button", onclick: () => { state.selectedLead = null; panel.hidden = true; $(".leads-layout").classList.add("no-detail"); } }, "close")),
      h("div", {}, [l.first_name, l.last_name].filter(Boolean).join(" "), l.title ? ` · ${l.title}` : "", l.company ? ` · ${l.company}` : ""),
      h("dl", { class: "facts" },
        fact("Status", l.status), fact("Version", l.version), fact("Score", l.score), fact("Segment", l.segment),
        fact("Owner", l.owner), fact("Campaign", l.campaign_id), fact("Tenant", l.tenant_id),
        fact("Contact step", l.contact_step), fact("Next action", l.next_action_at ? fmtTime(l.next_action_at) : null),
        fact("Do not contact", l.do_not_contact ? "yes" : null), fact("Created", fmtTime(l.created_at)),
        fact("Lead id", l.lead_id)),
      h("h2", {}, `Timeline (${data.events.length} events)`),
      h("ol", { class: "timeline", "data-testid": "lead-timeline" }, data.events.map((ev) => h("li", { "data-testid": "timeline-event", "data-type": ev.type },
        h("div", {}, h("b", {}, ev.type), ` → ${ev.status} (v${ev.version})`),
        h("div", {}, eventDetail(ev)),
        h("div", { class: "when", title: ev.occurred_at }, `${fmtTime(ev.occurred_at)} · ${relTime(ev.recorded_at)}`)))));
    panel.hidden = false;
    $(".leads-layout").classList.remove("no-detail");
  }

  // --- controls ----------------------------------------------------------------------

  function renderRunNow() {
    fill($("#run-now"), state.ui.jobs.map((job) => {
      const input = h("input", { id: `max-leads-${job}`, type: "number", min: 1, step: 1, placeholder: "max leads",
        "aria-label": `Max leads for ${job}`, "data-testid": `max-leads-${job}` });
      const result = h("p", { class: "result", "data-testid": `result-${job}`, "aria-live": "polite" });
      const button = h("button", { type: "button", "data-testid": `run-now-${job}`, disabled: !state.ui.controls_enabled,
        onclick: async () => {
          const body = { job };
          if (input.value) {
            const n = Number(input.value);
            if (!Number.isInteger(n) || n < 1) { showResult(result, { ok: false, text: "max leads must be a whole number of at least 1" }); return; }
            body.max_leads = n;
          }
          button.disabled = true;
          const res = await control("api/ticks", body);
          button.disabled = false;
          showResult(result, res, (d) => `Run requested (tick ${shortId(d.event_id)}); it appears under Jobs once it starts.`);
          if (res.ok) setTimeout(refresh, 1000);
        } }, "Run now");
      return h("div", { class: "run-now-row" }, h("span", { class: "job" }, job), input, button, result);
    }));
  }

  async function loadControls() {
    const list = await loadCampaignOptions();
    if (!list.length) {
      fill($("#campaigns"), emptyState("No campaigns yet — campaigns appear once leads are harvested.", "harvest"));
      return;
    }
    fill($("#campaigns"), h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Campaign"), h("th", {}, "Tenant"), h("th", { class: "num" }, "Leads"),
        h("th", { class: "num" }, "Contacted"), h("th", {}, ""), h("th", {}, ""))),
      h("tbody", {}, list.map((c) => {
        const result = h("span", { class: "result", "data-testid": `result-campaign-${c.campaign_id}` });
        const act = (verb) => async () => {
          const res = await control(`api/campaigns/${encodeURIComponent(c.campaign_id)}/${verb}`, { tenant_id: c.tenant_id });
          showResult(result, res, (d) => `${verb === "pause" ? "Pause" : "Resume"} requested (${shortId(d.event_id)})`);
        };
        return h("tr", { "data-campaign": c.campaign_id },
          h("td", {}, c.campaign_id), h("td", {}, c.tenant_id), h("td", { class: "num" }, fmtNum(c.leads)),
          h("td", { class: "num" }, fmtNum(c.by_status.CONTACTED)),
          h("td", {}, h("div", { class: "row" },
            h("button", { type: "button", class: "secondary", disabled: !state.ui.controls_enabled, "data-testid": `pause-${c.campaign_id}`, onclick: act("pause") }, "Pause"),
            h("button", { type: "button", class: "secondary", disabled: !state.ui.controls_enabled, "data-testid": `resume-${c.campaign_id}`, onclick: act("resume") }, "Resume"))),
          h("td", {}, result));
      })))));
  }

  function wireControls() {
    $("#kill-engage").addEventListener("click", async () => {
      const sure = await confirmAction("Engage the kill switch?", "No email will be sent for any tenant until you release it. Runs keep going; sends are skipped.");
      if (!sure) return;
      const res = await control("api/kill-switch", { engaged: true, reason: "dashboard" });
      showResult($("#result-kill"), res, (d) => `Kill switch engaged (${shortId(d.event_id)}).`);
    });
    $("#kill-release").addEventListener("click", async () => {
      const res = await control("api/kill-switch", { engaged: false, reason: "dashboard" });
      showResult($("#result-kill"), res, (d) => `Kill switch released (${shortId(d.event_id)}).`);
    });
    $("#suppress-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const target = $("#suppress-target").value.trim();
      const body = target.includes("@") ? { email: target } : { domain: target };
      const res = await control("api/suppressions", body);
      showResult($("#result-suppress"), res, (d) => `Suppression of ${target} requested (${shortId(d.event_id)}).`);
    });
    $("#forget-token").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); showTokenState(); });
    for (const id of ["#kill-engage", "#kill-release"]) $(id).disabled = !state.ui.controls_enabled;
    $("#suppress-form button").disabled = !state.ui.controls_enabled;
    $("#controls-disabled").hidden = state.ui.controls_enabled;
  }

  // --- tabs and refresh --------------------------------------------------------------

  function showTab(name) {
    state.tab = TABS.includes(name) ? name : "overview";
    document.querySelectorAll(".view").forEach((v) => { v.hidden = v.dataset.view !== state.tab; });
    document.querySelectorAll(".tabs a").forEach((a) => a.setAttribute("aria-selected", a.dataset.tab === state.tab ? "true" : "false"));
    refresh();
  }

  const loaders = { overview: loadOverview, jobs: loadJobs, leads: loadLeads, controls: loadControls };

  async function refresh() {
    if (state.busy) { state.again = true; return; }
    state.busy = true;
    const tenant = state.tenant;
    try {
      await Promise.all([loaders[state.tab](), loadTenantOptions()]);
      if (tenant !== state.tenant) { state.again = true; return; } // picked another meanwhile
      $("#updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
      $("#conn-error").hidden = true;
      document.body.dataset.loaded = state.tab;
      document.body.dataset.tenant = state.tenant;
    } catch (err) {
      const box = $("#conn-error");
      box.textContent = `could not refresh: ${err.message}`;
      box.hidden = false;
    } finally {
      state.busy = false;
      if (state.again) { state.again = false; refresh(); }
    }
  }

  function debounce(fn, ms) {
    let timer = null;
    return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
  }

  async function start() {
    takeTokenFromLink();
    try { state.ui = await getJSON("api/ui"); } catch (_) { /* keep defaults; refresh shows the error */ }
    if (state.ui.jobs.length && !state.ui.jobs.includes(state.job)) state.job = state.ui.jobs[0];
    renderJobPicker();
    renderRunNow();
    wireControls();
    showTokenState();
    $(".leads-layout").classList.add("no-detail");
    $("#tenant").addEventListener("change", (e) => pickTenant(e.target.value));
    const reload = () => { state.leads.offset = 0; refresh(); };
    $("#lead-q").addEventListener("input", debounce(reload, 300));
    $("#lead-status").addEventListener("change", reload);
    $("#lead-campaign").addEventListener("change", reload);
    $("#lead-search").addEventListener("submit", (e) => { e.preventDefault(); reload(); });
    $("#leads-prev").addEventListener("click", () => { state.leads.offset = Math.max(0, state.leads.offset - state.leads.limit); refresh(); });
    $("#leads-next").addEventListener("click", () => { state.leads.offset += state.leads.limit; refresh(); });
    $("#older-runs").addEventListener("click", () => { state.runsShown = Math.min(500, state.runsShown + 30); refresh(); });
    window.addEventListener("hashchange", () => showTab(location.hash.slice(1)));
    document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
    setInterval(() => { if (!document.hidden) refresh(); }, Math.max(1, state.ui.refresh_seconds) * 1000);
    showTab(location.hash.slice(1) || "overview");
  }

  start();
})();
