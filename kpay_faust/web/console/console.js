// KPay console: plain JavaScript, no build step. Reads the HTTP API with the tab's token,
// polls GET /console/state about once a second, and keeps bounded chart histories.
"use strict";

(function () {
  const LEVEL = { viewer: 1, client: 2, operator: 3 };
  const KEPT_1S = 300; // five minutes of 1 s windows
  const POLL_MS = 1000;
  const MINUTES_EVERY_MS = 15000;
  const TOKEN_KEY = "kpay-token";
  const $ = (id) => document.getElementById(id);
  const seconds = new Map(); // window start -> 1 s window
  let minutes = [];
  let who = null;
  let timer = null;
  let lastMinutes = 0;
  let accountCursors = [null];

  // ---- talking to the API ----------------------------------------------------------------

  async function api(method, path, body) {
    const headers = { Authorization: "Bearer " + sessionStorage.getItem(TOKEN_KEY) };
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    let answer = null;
    try { answer = await response.json(); } catch (e) { answer = null; }
    if (response.status === 401) signOut("Your token was not accepted: sign in again.");
    return { status: response.status, body: answer };
  }

  function problem(result) {
    return (result.body && result.body.error) || "the worker answered " + result.status;
  }

  function say(text, kind) {
    const box = $("message");
    box.textContent = text;
    box.className = "message" + (kind === "info" ? " info" : "");
    box.hidden = !text;
  }

  // ---- small helpers for building the page (text only, never HTML from data) ----------

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "–" : String(text);
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function fill(tableId, rows, build) {
    const body = $(tableId).querySelector("tbody");
    body.replaceChildren();
    for (const item of rows) {
      const row = document.createElement("tr");
      build(row, item);
      body.appendChild(row);
    }
    if (!rows.length) {
      const row = document.createElement("tr");
      const td = cell(row, "nothing yet");
      td.colSpan = $(tableId).querySelectorAll("thead th").length;
      td.className = "muted";
      body.appendChild(row);
    }
  }

  const count = (n) => Number(n).toLocaleString("en");
  const money = (a) => (a === null || a === undefined ? "–" : Number(a).toLocaleString("en", { minimumFractionDigits: 2, maximumFractionDigits: 2 }));
  const when = (t) => (t ? new Date(t * 1000).toLocaleTimeString() : "–");
  const ms = (v) => (v === null || v === undefined ? "–" : (v < 10 ? v.toFixed(1) : Math.round(v)) + " ms");

  // ---- signing in and roles -----------------------------------------------------------

  async function signIn(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    const result = await api("GET", "/whoami");
    if (result.status !== 200) {
      sessionStorage.removeItem(TOKEN_KEY);
      say(result.status === 401 ? "That token is not known to this cluster." : problem(result));
      return;
    }
    who = result.body;
    say("");
    $("whoami").textContent = who.name + " (" + who.role + ")";
    $("signin").hidden = true;
    $("signedin").hidden = false;
    $("welcome").hidden = true;
    for (const item of document.querySelectorAll("[data-role]")) {
      item.hidden = LEVEL[who.role] < LEVEL[item.dataset.role];
    }
    for (const item of document.querySelectorAll("[data-below]")) {
      item.hidden = LEVEL[who.role] >= LEVEL[item.dataset.below];
    }
    select(location.hash.slice(1) || "pipeline");
    await loadHistory();
    poll();
    loadAccounts();
  }

  function signOut(why) {
    sessionStorage.removeItem(TOKEN_KEY);
    who = null;
    clearTimeout(timer);
    $("signin").hidden = false;
    $("signedin").hidden = true;
    $("welcome").hidden = false;
    for (const panel of document.querySelectorAll("[role=tabpanel]")) panel.hidden = true;
    $("pipeline-state").textContent = "not signed in";
    $("pipeline-state").className = "badge";
    say(why || "");
  }

  // ---- tabs ---------------------------------------------------------------------------

  const tabs = () => Array.from(document.querySelectorAll("[role=tab]"));

  function select(name) {
    if (!$(name) || $(name).getAttribute("role") !== "tabpanel") name = "pipeline";
    for (const tab of tabs()) {
      const chosen = tab.getAttribute("aria-controls") === name;
      tab.setAttribute("aria-selected", String(chosen));
      tab.tabIndex = chosen ? 0 : -1;
      $(tab.getAttribute("aria-controls")).hidden = !chosen || !who;
    }
    if (location.hash.slice(1) !== name) history.replaceState(null, "", "#" + name);
    if (name === "instrumentation") drawCharts();
    if (name === "operations" && who && LEVEL[who.role] >= LEVEL.operator) loadOperations();
  }

  // ---- the live state -----------------------------------------------------------------

  async function poll() {
    clearTimeout(timer);
    if (!who) return;
    if (document.visibilityState === "visible") {
      try {
        const result = await api("GET", "/console/state");
        if (result.status === 200) showState(result.body);
        else if (result.status !== 401) $("updated").textContent = "waiting: " + problem(result);
      } catch (e) {
        $("updated").textContent = "the worker does not answer";
      }
      if (range() === "1m" && Date.now() - lastMinutes > MINUTES_EVERY_MS) loadMinutes();
    }
    if (who) timer = setTimeout(poll, POLL_MS);
  }

  function showState(state) {
    const p = state.pipeline;
    for (const kind of ["inflight", "confirmed", "rejected"]) {
      $(kind + "-count").textContent = count(p[kind].count);
      $(kind + "-amount").textContent = money(p[kind].amount);
    }
    const c = state.control;
    const badge = $("pipeline-state");
    badge.textContent = c.state;
    badge.className = "badge " + c.state;
    $("control-state").textContent = c.state;
    $("control-rate").textContent = c.per_second ? count(c.per_second) + "/s" : "none";
    $("control-since").textContent = c.since ? "since " + when(c.since) : "";
    $("updated").textContent = "updated " + when(state.at) + " · " + state.workers.length + " worker(s)";
    const unserved = $("unserved");
    unserved.hidden = !state.unserved_partitions.length;
    unserved.textContent = "Partitions without a serving worker (rebalancing): " + state.unserved_partitions.join(", ");
    fill("workers", state.workers, (row, w) => {
      cell(row, w.worker);
      cell(row, w.health, w.health === "ready" ? "" : "warning");
      cell(row, w.incoming_partitions.join(", ") || "none");
      cell(row, [...w.paused_partitions.map((x) => x + " paused"), ...w.held_for_load.map((x) => x + " full")].join(", ") || "none");
      cell(row, count(Object.values(w.lag).reduce((a, b) => a + b, 0)), "num");
      const books = w.checked_at === null ? "not checked yet" : w.reconcile_failures.length ? w.reconcile_failures.join("; ") : "reconciled at " + when(w.checked_at);
      cell(row, books, w.reconcile_failures.length ? "misses" : "");
    });
    $("dlq-depth").textContent = state.dead_letters === null ? "–" : count(state.dead_letters);
    showLoad(state.load);
    for (const window of state.recent) seconds.set(window.start, window);
    const starts = Array.from(seconds.keys()).sort((a, b) => a - b);
    while (starts.length > KEPT_1S) seconds.delete(starts.shift());
    showNow();
    if (!$("instrumentation").hidden) drawCharts();
  }

  // The newest complete 1 s window (the newest may still be filling).
  function showNow() {
    const windows = Array.from(seconds.values()).sort((a, b) => b.start - a.start);
    const now = Date.now() / 1000;
    const done = windows.find((w) => w.end <= now) || windows[0];
    if (!done) return;
    $("rate-now").textContent = count(done.per_second);
    $("rate-now").className = "big " + (done.per_second >= 1000 ? "meets" : "");
    $("p99-now").textContent = ms(done.latency_ms.p99);
    $("p99-now").className = "big " + (done.latency_ms.p99 === null ? "" : done.latency_ms.p99 < 200 ? "meets" : "misses");
    const latency = done.latency_ms.p99 === null ? "no payments finished" : "p99 " + ms(done.latency_ms.p99) + (done.latency_ms.p99 < 200 ? " — meets the 200 ms goal" : " — misses the 200 ms goal");
    const rate = count(done.per_second) + " payments/s" + (done.per_second >= 1000 ? " — meets the 1,000/s goal" : " — below the 1,000/s goal");
    $("goals").textContent = "Last second: " + latency + "; " + rate + ".";
  }

  // ---- instrumentation ------------------------------------------------------------------

  async function loadHistory() {
    const result = await api("GET", "/metrics/throughput?window=1s&limit=" + KEPT_1S);
    if (result.status === 200) for (const w of result.body.windows) seconds.set(w.start, w);
  }

  async function loadMinutes() {
    lastMinutes = Date.now();
    const result = await api("GET", "/metrics/throughput?window=1m&limit=60");
    if (result.status === 200) {
      minutes = result.body.windows;
      if (!$("instrumentation").hidden) drawCharts();
    }
  }

  function range() {
    const chosen = document.querySelector("input[name=range]:checked");
    return chosen ? chosen.value : "1s";
  }

  function drawCharts() {
    const size = range() === "1s" ? 1 : 60;
    const windows = (size === 1 ? Array.from(seconds.values()) : minutes.slice()).sort((a, b) => a.start - b.start);
    // A window that is missing had no payment: 0 a second, and no latency (a gap in the line).
    const every = [];
    for (let i = 0; i < windows.length; i++) {
      every.push(windows[i]);
      const next = windows[i + 1];
      for (let t = windows[i].start + size; next && t < next.start && every.length < 2000; t += size) {
        every.push({ start: t, per_second: 0, amount: "0", latency_ms: { p50: null, p95: null, p99: null, max: null } });
      }
    }
    const at = (pick) => every.map((w) => [w.start, pick(w)]);
    KPayCharts.draw($("chart-rate"), [{ name: "payments/s", color: "#0b57d0", points: at((w) => w.per_second) }],
      { goal: 1000, goalLabel: "goal 1,000/s", format: (v) => count(Math.round(v)) });
    KPayCharts.draw($("chart-amount"), [{ name: "confirmed amount/s", color: "#146c2e", points: at((w) => Number(w.amount) / size) }],
      { format: (v) => count(Math.round(v)) });
    KPayCharts.draw($("chart-latency"), [
      { name: "p50", color: "#0b57d0", points: at((w) => w.latency_ms.p50) },
      { name: "p95", color: "#8a5300", points: at((w) => w.latency_ms.p95) },
      { name: "p99", color: "#b3261e", points: at((w) => w.latency_ms.p99) },
      { name: "max", color: "#6b7280", points: at((w) => w.latency_ms.max) },
    ], { goal: 200, goalLabel: "goal 200 ms", format: (v) => count(Math.round(v)) });
  }

  // ---- control ----------------------------------------------------------------------

  async function command(path, body) {
    const result = await api("POST", path, body);
    if (result.status === 202) say("Done: " + result.body.accepted.command + " is on the control topic.", "info");
    else say(problem(result));
    poll();
  }

  // ---- accounts ---------------------------------------------------------------------

  async function loadAccounts() {
    const limit = $("account-limit").value;
    const prefix = $("account-prefix").value.trim();
    const after = accountCursors[accountCursors.length - 1];
    const query = new URLSearchParams({ limit });
    if (after) query.set("after", after);
    if (prefix) query.set("prefix", prefix);
    const result = await api("GET", "/accounts?" + query);
    if (result.status !== 200) { $("accounts-where").textContent = problem(result); return; }
    const page = result.body;
    fill("accounts-table", page.accounts, (row, a) => {
      row.className = "clickable";
      row.tabIndex = 0;
      row.addEventListener("click", () => showAccount(a.id));
      row.addEventListener("keydown", (e) => { if (e.key === "Enter") showAccount(a.id); });
      cell(row, a.id);
      cell(row, money(a.balance), "num");
      cell(row, a.last_payment);
      cell(row, when(a.updated_at));
    });
    $("accounts-next").disabled = !page.next;
    $("accounts-next").dataset.next = page.next || "";
    $("accounts-prev").disabled = accountCursors.length < 2;
    $("accounts-where").textContent = "page " + accountCursors.length + " · " + page.count + " shown";
  }

  async function showAccount(id) {
    const result = await api("GET", "/accounts/" + encodeURIComponent(id));
    const detail = $("account-detail");
    detail.hidden = false;
    $("account-title").textContent = "Account " + id;
    if (result.status !== 200) { $("account-summary").textContent = problem(result); return; }
    const a = result.body;
    $("account-summary").textContent = "Balance " + money(a.balance) + " · opened " + when(a.opened_at) + " · updated " + when(a.updated_at);
    const payments = await Promise.all(a.recent_payments.slice().reverse().map(async (pid) => {
      const found = await api("GET", "/payments/" + encodeURIComponent(pid));
      return found.status === 200 ? found.body : { id: pid, state: "no longer kept" };
    }));
    fill("account-payments", payments, (row, p) => {
      row.className = "clickable";
      row.tabIndex = 0;
      row.addEventListener("click", () => lookUp(p.id));
      row.addEventListener("keydown", (e) => { if (e.key === "Enter") lookUp(p.id); });
      cell(row, p.id); cell(row, p.state); cell(row, p.from); cell(row, p.to); cell(row, money(p.amount), "num");
    });
  }

  // ---- payments ---------------------------------------------------------------------

  async function lookUp(id) {
    select("payments");
    $("payment-id").value = id;
    const [status, trace] = await Promise.all([
      api("GET", "/payments/" + encodeURIComponent(id)),
      api("GET", "/payments/" + encodeURIComponent(id) + "/trace"),
    ]);
    const detail = $("payment-detail");
    detail.hidden = false;
    $("payment-title").textContent = "Payment " + id;
    const fields = $("payment-fields");
    fields.replaceChildren();
    if (status.status !== 200) {
      fill("trace-hops", [], () => {});
      $("trace-summary").textContent = "";
      const dd = document.createElement("dd");
      dd.textContent = problem(status);
      fields.appendChild(dd);
      return null;
    }
    const p = status.body;
    const shown = [["State", p.state], ["Reason", p.reason], ["From", p.from], ["To", p.to], ["Amount", money(p.amount)],
      ["Created", when(p.created_at)], ["Admitted", when(p.started_at)], ["Finished", when(p.finished_at)], ["In flight", p.inflight ? "yes" : "no"]];
    for (const [name, value] of shown) {
      const dt = document.createElement("dt"); dt.textContent = name;
      const dd = document.createElement("dd"); dd.textContent = value === null || value === undefined ? "–" : value;
      if (name === "State") dd.id = "payment-state";
      fields.append(dt, dd);
    }
    const hops = trace.status === 200 ? trace.body.hops : [];
    const total = trace.status === 200 && trace.body.latency_ms ? trace.body.latency_ms : 0;
    $("trace-summary").textContent = total ? "Submission to outcome: " + ms(total) + " over " + hops.length + " steps." : "Known once the payment has finished.";
    fill("trace-hops", hops, (row, h) => {
      cell(row, h.step); cell(row, h.worker); cell(row, h.topic + "[" + h.partition + "]@" + h.offset); cell(row, h.ms.toFixed(1), "num");
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = (total ? Math.max(1, (h.ms / total) * 100) : 0) + "%";
      cell(row, "").appendChild(bar);
    });
    return p;
  }

  async function submitPayment() {
    const body = { from: $("pay-from").value.trim(), to: $("pay-to").value.trim(), amount: $("pay-amount").value.trim() };
    if ($("pay-id").value.trim()) body.id = $("pay-id").value.trim();
    const result = await api("POST", "/payments", body);
    if (result.status !== 202) { say(problem(result)); return; }
    const id = result.body.id;
    say("Payment " + id + " accepted; waiting for its outcome…", "info");
    for (let tries = 0; tries < 40; tries++) {
      const p = await lookUp(id);
      if (p && (p.state === "confirmed" || p.state === "rejected")) {
        say("Payment " + id + " " + p.state + (p.reason ? ": " + p.reason : "") + ".", "info");
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  // ---- load -------------------------------------------------------------------------

  function showLoad(load) {
    $("load-status").textContent = load.running
      ? "running: " + count(load.per_second) + " payments/s between " + count(load.accounts) + " accounts, started " + when(load.started_at)
      : load.started_at ? "stopped at " + when(load.ended_at) + " (ran " + count(load.per_second) + "/s)" : "not running";
  }

  // ---- operations -------------------------------------------------------------------

  async function reconcile() {
    const box = $("reconcile-result");
    box.textContent = "checking…";
    const result = await api("GET", "/reconcile");
    if (result.status !== 200) { box.textContent = problem(result); return; }
    const r = result.body;
    box.replaceChildren();
    const head = document.createElement("p");
    head.className = r.passed ? "meets" : "misses";
    head.textContent = (r.passed ? "The books reconcile" : "The books do not reconcile") + " (money conservation: " + r.conservation + ").";
    const figures = document.createElement("p");
    figures.textContent = "Balances " + money(r.money.balances) + " of " + money(r.money.funded) + " funded; in transit " + money(r.money.in_transit) +
      "; " + count(r.accounts) + " accounts; " + count(r.payments.inflight.count) + " payments in flight; " + r.stuck.length + " stuck.";
    box.append(head, figures);
    for (const failure of r.failures) {
      const line = document.createElement("p");
      line.className = "misses";
      line.textContent = failure;
      box.appendChild(line);
    }
  }

  async function loadOperations() {
    const [letters, audit, logs] = await Promise.all([
      api("GET", "/dlq?limit=20"), api("GET", "/audit?limit=20"), api("GET", "/logs?limit=20"),
    ]);
    if (letters.status === 200) fill("dlq-table", letters.body.dead_letters.slice().reverse(), (row, d) => {
      const where = d.dlq_partition + "@" + d.dlq_offset;
      cell(row, where); cell(row, d.stage); cell(row, d.error); cell(row, (d.topic || "?") + "[" + d.partition + "]@" + d.offset); cell(row, when(d.at));
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Replay";
      button.setAttribute("aria-label", "Replay dead letter " + where);
      button.addEventListener("click", () => replay(where));
      cell(row, "").appendChild(button);
    });
    if (audit.status === 200) fill("audit-table", audit.body.records.slice().reverse(), (row, a) => {
      cell(row, when(a.at)); cell(row, a.principal + (a.role ? " (" + a.role + ")" : "")); cell(row, a.action);
      cell(row, a.outcome + (a.reason ? ": " + a.reason : ""), a.outcome === "refused" ? "misses" : ""); cell(row, a.status);
    });
    if (logs.status === 200) fill("logs-table", logs.body.records.slice().reverse(), (row, l) => {
      cell(row, when(l.at)); cell(row, l.level); cell(row, l.worker); cell(row, l.message);
    });
  }

  async function replay(where) {
    const result = await api("POST", "/dlq/replay", { dead_letters: [where] });
    if (result.status !== 200) { say(problem(result)); return; }
    const done = result.body.results[0];
    say(done && done.replayed ? "Dead letter " + where + " replayed to " + done.topic + "." : "Not replayed: " + (done ? done.why : "not found"), "info");
    loadOperations();
  }

  // ---- wiring -----------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("signin").addEventListener("submit", (e) => { e.preventDefault(); signIn($("token").value.trim()); $("token").value = ""; });
    $("signout").addEventListener("click", () => signOut());
    tabs().forEach((tab, index) => {
      tab.addEventListener("click", () => select(tab.getAttribute("aria-controls")));
      tab.addEventListener("keydown", (e) => {
        const step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
        if (!step) return;
        const next = tabs()[(index + step + tabs().length) % tabs().length];
        next.focus();
        select(next.getAttribute("aria-controls"));
      });
    });
    for (const radio of document.querySelectorAll("input[name=range]")) {
      radio.addEventListener("change", () => { if (range() === "1m") loadMinutes(); drawCharts(); });
    }
    $("pause").addEventListener("click", () => $("confirm-pause").showModal());
    $("confirm-pause").addEventListener("close", () => { if ($("confirm-pause").returnValue === "pause") command("/control/pause", {}); });
    $("resume").addEventListener("click", () => command("/control/resume", {}));
    $("rate-form").addEventListener("submit", (e) => { e.preventDefault(); command("/control/rate", { per_second: Number($("rate").value) }); });
    $("rate-lift").addEventListener("click", () => command("/control/rate", { per_second: null }));
    $("account-search").addEventListener("submit", (e) => { e.preventDefault(); accountCursors = [null]; loadAccounts(); });
    $("accounts-first").addEventListener("click", () => { accountCursors = [null]; loadAccounts(); });
    $("accounts-next").addEventListener("click", () => { accountCursors.push($("accounts-next").dataset.next); loadAccounts(); });
    $("accounts-prev").addEventListener("click", () => { if (accountCursors.length > 1) accountCursors.pop(); loadAccounts(); });
    $("payment-lookup").addEventListener("submit", (e) => { e.preventDefault(); lookUp($("payment-id").value.trim()); });
    $("payment-submit").addEventListener("submit", (e) => { e.preventDefault(); submitPayment(); });
    $("load-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const result = await api("POST", "/load", { per_second: Number($("load-rate").value), accounts: Number($("load-accounts").value), seconds: Number($("load-seconds").value) });
      if (result.status === 202) { showLoad(result.body); say("Demo load started.", "info"); } else say(problem(result));
    });
    $("load-stop").addEventListener("click", async () => {
      const result = await api("DELETE", "/load");
      if (result.status === 200) { showLoad(result.body); say("Demo load stopped.", "info"); } else say(problem(result));
    });
    $("reconcile").addEventListener("click", reconcile);
    $("operations-refresh").addEventListener("click", loadOperations);
    document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible" && who) poll(); });
    window.addEventListener("resize", () => { if (who && !$("instrumentation").hidden) drawCharts(); });
    const kept = sessionStorage.getItem(TOKEN_KEY);
    if (kept) signIn(kept);
  });
})();
