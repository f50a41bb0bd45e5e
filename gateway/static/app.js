// ShrivenQuant dashboard: plain JavaScript against the gateway's own REST API and /v1/ws.
// No build step and no external resources; the page's CSP allows only this origin, so nothing here
// is inline and no data is ever inserted as HTML (textContent only).
"use strict";

(() => {
  const REFRESH_MS = 5000;
  const MAX_FILL_ROWS = 50;
  const WORKING = new Set(["PENDING_RISK", "ACCEPTED", "WORKING", "PARTIALLY_FILLED"]);
  const WS_PATTERNS = ["sq.exec.report.>", "sq.ctl.killswitch.>", "sq.ctl.state.>", "sq.ctl.breaker.>"];
  const TOKEN_KEY = "sq.token";
  const DEPTH_LEVELS = 10;

  const state = {
    token: null, me: null, ws: null, wsAttempts: 0, wsTimer: null, refreshTimer: null, soon: null,
    seenFills: new Set(), killswitch: new Map(), pnl: [], candles: [], tcaOrder: null,
  };
  const $ = (id) => document.getElementById(id);

  class ApiError extends Error {
    constructor(status, error, detail) {
      super(`${error}: ${detail}`);
      this.status = status;
      this.error = error;
      this.detail = detail;
    }
  }

  // ---- API -------------------------------------------------------------------------------------

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method, headers, cache: "no-store", credentials: "omit",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (exc) {
      throw new ApiError(0, "network_error", `the gateway did not answer (${exc.message})`);
    }
    const text = await response.text();
    let payload = null;
    try { payload = text ? JSON.parse(text) : null; } catch (_exc) { payload = null; }
    if (!response.ok) {
      const error = (payload && payload.error) || `http_${response.status}`;
      let detail = (payload && payload.detail) || text || response.statusText;
      const retry = response.headers.get("Retry-After");
      if (retry) detail += ` (retry after ${retry} s)`;
      if (response.status === 401 && state.token && path !== "/v1/auth/login") {
        signOut();
      }
      throw new ApiError(response.status, error, detail);
    }
    return payload;
  }

  function showError(exc) {
    const text = exc instanceof ApiError
      ? `${exc.status ? exc.status + " " : ""}${exc.error}: ${exc.detail}`
      : String(exc && exc.message ? exc.message : exc);
    $("error-text").textContent = text;
    $("error").hidden = false;
  }

  function clearError() {
    $("error").hidden = true;
    $("error-text").textContent = "";
  }

  async function attempt(button, action) {
    if (button) button.disabled = true;
    try {
      clearError();
      return await action();
    } catch (exc) {
      showError(exc);
      return undefined;
    } finally {
      if (button) button.disabled = false;
    }
  }

  // ---- formatting and DOM helpers --------------------------------------------------------------

  const fmtTime = (ns) => (ns ? new Date(Number(ns) / 1e6).toLocaleTimeString([], { hour12: false }) : "");
  const dash = (value) => (value === null || value === undefined || value === "" ? "—" : String(value));
  const sign = (value) => (value === null || value === undefined ? "" : Number(value) > 0 ? "pos"
    : Number(value) < 0 ? "neg" : "");

  function cell(row, value, className) {
    const td = document.createElement("td");
    td.textContent = dash(value);
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function fillTable(id, rows, render) {
    const body = $(id).tBodies[0];
    body.replaceChildren(...rows.map(render));
    const empty = $(`${id}-empty`);
    if (empty) empty.hidden = rows.length > 0;
  }

  const has = (...roles) => Boolean(state.me && state.me.roles.some((r) => roles.includes(r)));

  // ---- session ---------------------------------------------------------------------------------

  async function login(event) {
    event.preventDefault();
    const username = $("login-username").value.trim();
    const password = $("login-password").value;
    const totp = $("login-totp").value.trim();
    if (!username || !password || !/^[0-9]{6}$/.test(totp)) {
      showError(new ApiError(0, "invalid_request", "enter your username, password and the 6-digit code"));
      return;
    }
    await attempt($("login-submit"), async () => {
      const answer = await api("POST", "/v1/auth/login", { username, password, totp });
      state.token = answer.access_token;
      sessionStorage.setItem(TOKEN_KEY, state.token);
      $("login-password").value = "";
      $("login-totp").value = "";
      await start();
    });
  }

  async function start() {
    state.me = await api("GET", "/v1/auth/me");
    $("who").textContent = `${state.me.username} · ${state.me.roles.join(", ")}`;
    $("login-panel").hidden = true;
    $("session").hidden = false;
    $("dashboard").hidden = false;
    $("health").hidden = false;
    const accounts = $("ticket-accounts");
    accounts.replaceChildren(...state.me.accounts.map((name) => {
      const option = document.createElement("option");
      option.value = name;
      return option;
    }));
    if (!$("ticket-account").value && state.me.accounts.length) $("ticket-account").value = state.me.accounts[0];
    $("ticket").hidden = !has("trader", "admin");
    if ($("ticket").hidden) $("ticket-result").textContent = "Your role may not place orders.";
    $("killswitch-form").hidden = !has("risk", "admin");
    connect();
    await refresh();
    state.refreshTimer = setInterval(() => { refresh().catch(showError); }, REFRESH_MS);
  }

  function signOut() {
    state.token = null;
    state.me = null;
    sessionStorage.removeItem(TOKEN_KEY);
    clearInterval(state.refreshTimer);
    clearTimeout(state.wsTimer);
    if (state.ws) { const ws = state.ws; state.ws = null; ws.close(1000, "signed out"); }
    setLive(false);
    $("dashboard").hidden = true;
    $("health").hidden = true;
    $("session").hidden = true;
    $("login-panel").hidden = false;
  }

  async function logout() {
    try { await api("POST", "/v1/auth/logout"); } catch (_exc) { /* the token is dropped either way */ }
    signOut();
  }

  // ---- live events -----------------------------------------------------------------------------

  function setLive(on, text) {
    const badge = $("ws-status");
    badge.textContent = text || (on ? "live: on" : "live: off");
    badge.className = `badge ${on ? "badge-ok" : "badge-muted"}`;
  }

  function connect() {
    if (!state.token) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/v1/ws?token=${encodeURIComponent(state.token)}`);
    state.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ subscribe: WS_PATTERNS }));
    ws.onmessage = (message) => {
      let frame;
      try { frame = JSON.parse(message.data); } catch (_exc) { return; }
      if (frame.subscribed) {
        state.wsAttempts = 0;
        setLive(true);
      } else if (frame.error) {
        showError(new ApiError(0, frame.error, frame.detail));
      } else if (frame.subject) {
        onEvent(frame.subject, frame.event);
      }
    };
    ws.onclose = (closed) => {
      if (state.ws !== ws) return;
      state.ws = null;
      setLive(false);
      if (closed.code === 4001) { signOut(); showError(new ApiError(401, "unauthorized", "your session expired")); return; }
      if (closed.code === 4002) { signOut(); showError(new ApiError(401, "unauthorized", "your session was revoked")); return; }
      if (!state.token) return;
      // Back off 1, 2, 4 … 30 s; a resync from REST follows each reconnect via the refresh loop.
      const delay = Math.min(30000, 1000 * 2 ** state.wsAttempts++);
      setLive(false, `live: reconnecting in ${Math.round(delay / 1000)} s`);
      state.wsTimer = setTimeout(connect, delay);
    };
  }

  function onEvent(subject, event) {
    if (subject.startsWith("sq.exec.report.")) {
      if ((event.status === "PARTIAL" || event.status === "FILLED") && Number(event.last_quantity) > 0) {
        addFill({ report_id: event.id, ts: event.ts, account: event.account, symbol: event.symbol,
          side: event.side, quantity: event.last_quantity, price: event.last_price, venue: event.venue }, true);
      }
      refreshSoon();
    } else if (subject.startsWith("sq.ctl.")) {
      onControl(event);
    }
  }

  function refreshSoon() {
    clearTimeout(state.soon);
    state.soon = setTimeout(() => { refresh().catch(showError); }, 250);
  }

  // ---- panels ----------------------------------------------------------------------------------

  async function refresh() {
    if (!state.token) return;
    const jobs = [loadPositions(), loadOrders(), loadPnl(), loadDecisions(), loadHealth(), loadDepth()];
    if (state.tcaOrder) jobs.push(loadTca(state.tcaOrder));
    if (state.seenFills.size === 0) jobs.push(loadFills());
    if ($("candles-symbol").value.trim()) jobs.push(loadCandles());
    const results = await Promise.allSettled(jobs);
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
  }

  async function loadPositions() {
    const { positions } = await api("GET", "/v1/positions");
    fillTable("positions", positions, (p) => {
      const row = document.createElement("tr");
      row.dataset.symbol = p.symbol;
      cell(row, p.account); cell(row, p.symbol); cell(row, p.quantity, "num"); cell(row, p.avg_price, "num");
      cell(row, p.mark, "num"); cell(row, p.unrealized_pnl, `num ${sign(p.unrealized_pnl)}`);
      cell(row, p.realized_pnl, `num ${sign(p.realized_pnl)}`); cell(row, p.net_pnl, `num ${sign(p.net_pnl)}`);
      return row;
    });
    if (!$("candles-symbol").value && positions.length) $("candles-symbol").value = positions[0].symbol;
  }

  async function loadOrders() {
    const { orders } = await api("GET", "/v1/orders?limit=50");
    const mayCancel = has("trader", "admin");
    fillTable("orders", orders, (o) => {
      const row = document.createElement("tr");
      row.dataset.orderId = o.order_id;
      row.dataset.status = o.status;
      cell(row, fmtTime(o.created_ts)); cell(row, o.account); cell(row, o.symbol); cell(row, o.side);
      cell(row, o.quantity, "num"); cell(row, o.filled_quantity, "num"); cell(row, o.limit_price, "num");
      cell(row, o.avg_price, "num"); cell(row, o.algo);
      const status = cell(row, o.cancel_requested && WORKING.has(o.status) ? `${o.status} (cancelling)` : o.status,
        `status-${o.status}`);
      if (o.reasons) status.title = o.reasons;
      const actions = cell(row, "");
      actions.textContent = "";
      if (o.completed) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "secondary small";
        button.textContent = "TCA";
        button.dataset.tca = o.order_id;
        button.setAttribute("aria-label", `Transaction cost of order ${o.client_order_id}`);
        button.addEventListener("click", () => attempt(button, () => loadTca(o.order_id)));
        actions.appendChild(button);
      }
      if (mayCancel && WORKING.has(o.status) && !o.cancel_requested) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "secondary small";
        button.textContent = "Cancel";
        button.setAttribute("aria-label", `Cancel order ${o.client_order_id}`);
        button.addEventListener("click", () => cancelOrder(button, o));
        actions.appendChild(button);
      }
      return row;
    });
  }

  async function cancelOrder(button, order) {
    await attempt(button, async () => {
      await api("DELETE", `/v1/orders/${encodeURIComponent(order.order_id)}?account=${encodeURIComponent(order.account)}`);
      await loadOrders();
    });
  }

  async function loadFills() {
    const { fills } = await api("GET", "/v1/fills?limit=20");
    for (const fill of fills.slice().reverse()) addFill(fill, false);
  }

  function addFill(fill, live) {
    if (state.seenFills.has(fill.report_id)) return;
    state.seenFills.add(fill.report_id);
    const row = document.createElement("tr");
    row.dataset.reportId = fill.report_id;
    row.dataset.source = live ? "live" : "history";
    if (live) row.className = "fresh";
    cell(row, fmtTime(fill.ts)); cell(row, fill.account); cell(row, fill.symbol); cell(row, fill.side);
    cell(row, fill.quantity, "num"); cell(row, fill.price, "num"); cell(row, fill.venue);
    const body = $("fills").tBodies[0];
    body.insertBefore(row, body.firstChild);
    while (body.rows.length > MAX_FILL_ROWS) body.deleteRow(-1);
    $("fills-empty").hidden = true;
  }

  async function loadPnl() {
    const { pnl } = await api("GET", "/v1/pnl?limit=2000");
    state.pnl = pnl;
    drawPnl();
  }

  async function loadCandles() {
    const symbol = $("candles-symbol").value.trim();
    const interval = $("candles-interval").value;
    if (!symbol) return;
    const query = new URLSearchParams({ symbol, interval, limit: "120" });
    const { candles } = await api("GET", `/v1/candles?${query}`);
    state.candles = candles;
    drawCandles(symbol, interval);
  }

  async function loadDecisions() {
    const { decisions } = await api("GET", "/v1/decisions?limit=10");
    fillTable("decisions", decisions, (d) => {
      const row = document.createElement("tr");
      cell(row, fmtTime(d.ts)); cell(row, d.account); cell(row, d.symbol);
      cell(row, d.accepted ? "accepted" : `rejected: ${d.failed_checks}`, d.accepted ? "pos" : "neg");
      cell(row, d.reasons, "wrap");
      return row;
    });
  }

  // ---- health, depth and TCA -------------------------------------------------------------------

  function healthItem(name, ready, lag, title) {
    const item = document.createElement("li");
    item.dataset.service = name;
    item.dataset.ready = String(ready);
    item.className = `badge ${ready ? "badge-ok" : "badge-bad"}`;
    item.textContent = `${name} ${ready ? "ready" : "not ready"}${lag === null || lag === undefined ? "" : ` · lag ${lag}`}`;
    if (title) item.title = title;
    return item;
  }

  async function loadHealth() {
    // /readyz answers 503 with the same JSON while something is missing: read it either way.
    let body;
    try {
      const response = await fetch("/readyz", { cache: "no-store", credentials: "omit" });
      body = await response.json();
    } catch (exc) {
      $("health-list").replaceChildren(healthItem("gateway", false, null, String(exc.message || exc)));
      $("health-summary").textContent = "the gateway did not answer its readiness probe";
      return;
    }
    const checks = body.checks || {};
    const own = Object.entries(checks).every(([key, value]) => key === "projection_lag_events" || value);
    const items = [healthItem("gateway", own, checks.projection_lag_events,
      Object.entries(checks).map(([k, v]) => `${k}: ${v}`).join(", "))];
    for (const [name, answer] of Object.entries(body.services || {})) {
      items.push(healthItem(name, Boolean(answer.ready), answer.lag_events, answer.error || ""));
    }
    $("health-list").replaceChildren(...items);
    const waiting = body.waiting_for || {};
    const missing = [...(waiting.book || []).map((m) => `book ${m}`),
      ...(waiting.last_trade || []).map((m) => `last trade ${m}`)];
    $("health-summary").textContent = body.ready ? "ready: every market tradable"
      : `waiting for ${[...(waiting.checks || []), ...(waiting.services || []), ...missing].join(", ") || "…"}`;
  }

  async function loadDepth() {
    const { books } = await api("GET", "/v1/depth");
    const select = $("depth-book");
    const chosen = select.value;
    const keys = books.map((b) => `${b.venue}/${b.symbol}`);
    if (keys.join(",") !== [...select.options].map((o) => o.value).join(",")) {
      select.replaceChildren(...books.map((b) => {
        const option = document.createElement("option");
        option.value = `${b.venue}/${b.symbol}`;
        option.textContent = `${b.symbol} (${b.venue})`;
        return option;
      }));
      const preferred = keys.includes(chosen) ? chosen
        : (books.find((b) => b.synced && b.symbol === $("candles-symbol").value.trim()) || books.find((b) => b.synced)
          || books[0] || {});
      select.value = typeof preferred === "string" ? preferred : `${preferred.venue}/${preferred.symbol}`;
    }
    if (!select.value) { fillTable("depth", [], () => null); $("depth-summary").textContent = ""; return; }
    const [venue, symbol] = select.value.split("/");
    const path = `/v1/depth/${encodeURIComponent(venue)}/${encodeURIComponent(symbol)}?levels=${DEPTH_LEVELS}`;
    const book = await api("GET", path);
    const rows = Array.from({ length: Math.max(book.bids.length, book.asks.length) }, (_, i) => i);
    fillTable("depth", rows, (i) => {
      const row = document.createElement("tr");
      row.dataset.level = String(i + 1);
      const bid = book.bids[i] || [null, null];
      const ask = book.asks[i] || [null, null];
      cell(row, bid[1], "num"); cell(row, bid[0], "num"); cell(row, ask[0], "num"); cell(row, ask[1], "num");
      return row;
    });
    const best = book.bids.length && book.asks.length
      ? ` · spread ${+(Number(book.asks[0][0]) - Number(book.bids[0][0])).toFixed(12)}` : "";
    $("depth-summary").textContent = `${symbol} on ${venue}: ${book.bids.length} bid and ${book.asks.length} ask `
      + `levels${best}${book.synced ? "" : " (out of sync: waiting for a snapshot)"} · ${fmtTime(book.ts)}`;
  }

  async function loadTca(orderId) {
    const order = await api("GET", `/v1/orders/${encodeURIComponent(orderId)}`);
    state.tcaOrder = orderId;
    const bps = (value) => (value === null || value === undefined ? null : `${value} bps`);
    $("tca").dataset.orderId = orderId;
    $("tca-order").textContent = `${order.client_order_id} · ${order.side} ${order.quantity} ${order.symbol} · ${order.algo}`;
    $("tca-status").textContent = dash(order.status);
    $("tca-filled").textContent = dash(order.filled_quantity);
    $("tca-arrival").textContent = dash(order.arrival_price);
    $("tca-avg").textContent = dash(order.avg_price);
    $("tca-shortfall").textContent = dash(bps(order.shortfall_bps));
    $("tca-shortfall").className = `num ${sign(order.shortfall_bps === null ? null : -Number(order.shortfall_bps))}`;
    $("tca-vwap").textContent = dash(bps(order.vwap_slippage_bps));
    $("tca-fees").textContent = dash(order.fees);
    $("tca").hidden = false;
    $("tca-empty").hidden = true;
  }

  // ---- order ticket ----------------------------------------------------------------------------

  function showAlgoFields() {
    const kind = $("ticket-algo").value;
    for (const element of document.querySelectorAll("#ticket [data-algo]")) {
      element.hidden = !element.dataset.algo.split(" ").includes(kind);
    }
  }

  function ticketBody() {
    const value = (id) => $(id).value.trim();
    const kind = value("ticket-algo");
    const algo = { kind };
    if (kind === "TWAP" || kind === "VWAP") {
      algo.duration_s = Number(value("ticket-duration"));
      if (value("ticket-slices")) algo.slices = Number(value("ticket-slices"));
    } else if (kind === "POV") {
      algo.rate = Number(value("ticket-rate"));
    }
    const body = {
      account: value("ticket-account"),
      client_order_id: `ui-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
      symbol: value("ticket-symbol").toUpperCase(),
      side: value("ticket-side"),
      quantity: value("ticket-quantity"),
      time_in_force: value("ticket-tif"),
      algo,
    };
    if (value("ticket-price")) body.limit_price = value("ticket-price");
    return body;
  }

  async function placeOrder(event) {
    event.preventDefault();
    const body = ticketBody();
    const missing = ["account", "symbol", "quantity"].filter((k) => !body[k]);
    if (missing.length) {
      showError(new ApiError(0, "invalid_request", `fill in ${missing.join(", ")}`));
      return;
    }
    const sent = await attempt($("ticket-submit"), async () => {
      $("ticket-result").textContent = "Sending…";
      const answer = await api("POST", "/v1/orders", body);
      $("ticket-result").textContent =
        `Order ${answer.client_order_id} accepted as ${answer.order_id} (${answer.stream} #${answer.stream_seq}).`;
      if (!$("candles-symbol").value) $("candles-symbol").value = body.symbol;
      await loadOrders();
      return true;
    });
    if (!sent) $("ticket-result").textContent = "Not sent; see the error above.";
  }

  // ---- risk ------------------------------------------------------------------------------------

  function onControl(event) {
    const scope = event.account || "all";
    let text;
    if (event.type === "KillSwitchEngaged" || event.type === "KillSwitchReleased") {
      const engaged = event.type === "KillSwitchEngaged";
      state.killswitch.set(scope, engaged);
      text = `${fmtTime(event.ts)} kill switch ${engaged ? "ENGAGED" : "released"} for ${scope} by ${event.actor}: ${event.reason}`;
      renderRisk();
      refreshSoon();
    } else if (event.type === "TradingStateChanged") {
      text = `${fmtTime(event.ts)} trading state of ${scope} → ${event.state}: ${event.reason}`;
    } else if (event.type === "CircuitBreakerTripped") {
      text = `${fmtTime(event.ts)} circuit breaker tripped on ${event.symbol} (${event.cause}): ${event.detail}`;
    } else if (event.type === "CircuitBreakerReset") {
      text = `${fmtTime(event.ts)} circuit breaker reset on ${event.symbol}`;
    } else {
      return;
    }
    const item = document.createElement("li");
    item.textContent = text;
    item.dataset.type = event.type;
    $("risk-events").insertBefore(item, $("risk-events").firstChild);
  }

  function renderRisk() {
    const engaged = [...state.killswitch].filter(([, on]) => on).map(([scope]) => scope);
    const badge = $("risk-state");
    if (engaged.length) {
      badge.textContent = `ENGAGED (${engaged.join(", ")})`;
      badge.className = "badge badge-bad";
    } else if (state.killswitch.size) {
      badge.textContent = "released";
      badge.className = "badge badge-ok";
    }
    badge.dataset.engaged = String(engaged.length > 0);
  }

  async function killSwitch(button, engaged) {
    const reason = $("killswitch-reason").value.trim();
    const account = $("killswitch-account").value.trim() || null;
    if (!reason) {
      showError(new ApiError(0, "invalid_request", "reason: say why you engage or release the kill switch"));
      return;
    }
    if (engaged && !window.confirm(`Engage the kill switch for ${account || "ALL accounts"}? Working orders are cancelled.`)) {
      return;
    }
    await attempt(button, async () => {
      const answer = await api("POST", "/v1/risk/killswitch", { engaged, reason, account });
      // The answer means the event is in the WAL: a fact, even before the live frame arrives.
      state.killswitch.set(answer.account || "all", answer.engaged);
      renderRisk();
    });
  }

  // ---- charts (canvas, no library) -------------------------------------------------------------

  function prepare(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || canvas.width;
    const height = canvas.clientHeight || canvas.height;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = "11px system-ui, sans-serif";
    return { ctx, width, height };
  }

  // Enough decimals to tell the grid lines apart, and no more.
  function tick(value, range) {
    const digits = Math.min(8, Math.max(0, Math.ceil(-Math.log10(range / 4)) + 1));
    return value.toFixed(digits);
  }

  function axis(ctx, width, height, pad, low, high) {
    ctx.strokeStyle = "#d9dee5";
    ctx.fillStyle = "#5b6675";
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i += 1) {
      const y = pad.top + ((height - pad.top - pad.bottom) * i) / 4;
      ctx.beginPath(); ctx.moveTo(pad.left, y); ctx.lineTo(width - pad.right, y); ctx.stroke();
      const value = high - ((high - low) * i) / 4;
      ctx.fillText(tick(value, high - low), 4, y + 4);
    }
  }

  const COLOURS = ["#1f5fbf", "#147a3d", "#9a6700", "#8e24aa", "#b3261e", "#00838f"];

  function drawPnl() {
    const canvas = $("pnl-chart");
    const { ctx, width, height } = prepare(canvas);
    const points = state.pnl;
    if (!points.length) {
      $("pnl-summary").textContent = "No P&L yet.";
      return;
    }
    const byAccount = new Map();
    for (const p of points) {
      if (!byAccount.has(p.account)) byAccount.set(p.account, []);
      byAccount.get(p.account).push([Number(p.ts), Number(p.net_pnl)]);
    }
    const xs = points.map((p) => Number(p.ts));
    const ys = points.map((p) => Number(p.net_pnl)).concat([0]);
    let [low, high] = [Math.min(...ys), Math.max(...ys)];
    if (high === low) { high += 1; low -= 1; }
    const [start, end] = [Math.min(...xs), Math.max(...xs)];
    const pad = { left: 64, right: 10, top: 10, bottom: 20 };
    axis(ctx, width, height, pad, low, high);
    const x = (t) => pad.left + (end === start ? 0.5 : (t - start) / (end - start)) * (width - pad.left - pad.right);
    const y = (v) => pad.top + ((high - v) / (high - low)) * (height - pad.top - pad.bottom);
    ctx.strokeStyle = "#aab4c0"; ctx.setLineDash([4, 3]);
    ctx.beginPath(); ctx.moveTo(pad.left, y(0)); ctx.lineTo(width - pad.right, y(0)); ctx.stroke();
    ctx.setLineDash([]);
    const summary = [];
    [...byAccount].forEach(([account, series], index) => {
      ctx.strokeStyle = COLOURS[index % COLOURS.length];
      ctx.fillStyle = ctx.strokeStyle;
      ctx.lineWidth = 2;
      ctx.beginPath();
      series.forEach(([t, v], i) => (i ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
      ctx.stroke();
      if (series.length === 1) { ctx.beginPath(); ctx.arc(x(series[0][0]), y(series[0][1]), 3, 0, 7); ctx.fill(); }
      ctx.fillText(account, width - pad.right - 60, pad.top + 12 + 13 * index);
      summary.push(`${account}: ${series[series.length - 1][1]}`);
    });
    ctx.fillStyle = "#5b6675";
    ctx.fillText(fmtTime(start), pad.left, height - 5);
    ctx.fillText(fmtTime(end), width - pad.right - 50, height - 5);
    $("pnl-summary").textContent = `Net P&L now — ${summary.join(", ")}`;
    canvas.setAttribute("aria-label", `Net P&L over time; ${summary.join(", ")}`);
  }

  function drawCandles(symbol, interval) {
    const canvas = $("candles-chart");
    const { ctx, width, height } = prepare(canvas);
    const bars = state.candles;
    if (!bars.length) {
      $("candles-summary").textContent = `No ${interval} candles for ${symbol} yet.`;
      return;
    }
    let low = Math.min(...bars.map((b) => Number(b.low)));
    let high = Math.max(...bars.map((b) => Number(b.high)));
    if (high === low) { high += 1; low -= 1; }
    const pad = { left: 64, right: 10, top: 10, bottom: 20 };
    axis(ctx, width, height, pad, low, high);
    const step = (width - pad.left - pad.right) / bars.length;
    const y = (v) => pad.top + ((high - v) / (high - low)) * (height - pad.top - pad.bottom);
    bars.forEach((b, i) => {
      const [open, close] = [Number(b.open), Number(b.close)];
      const centre = pad.left + step * (i + 0.5);
      ctx.strokeStyle = ctx.fillStyle = close >= open ? "#147a3d" : "#b3261e";
      ctx.beginPath(); ctx.moveTo(centre, y(Number(b.high))); ctx.lineTo(centre, y(Number(b.low))); ctx.stroke();
      const body = Math.max(1, Math.abs(y(open) - y(close)));
      ctx.fillRect(centre - Math.max(1, step * 0.35), Math.min(y(open), y(close)), Math.max(2, step * 0.7), body);
    });
    const last = bars[bars.length - 1];
    ctx.fillStyle = "#5b6675";
    ctx.fillText(fmtTime(bars[0].open_time), pad.left, height - 5);
    ctx.fillText(fmtTime(last.open_time), width - pad.right - 50, height - 5);
    $("candles-summary").textContent =
      `${symbol} ${interval}: ${bars.length} bars, last O ${last.open} H ${last.high} L ${last.low} C ${last.close} V ${last.volume}`;
    canvas.setAttribute("aria-label", $("candles-summary").textContent);
  }

  // ---- wiring ----------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", login);
    $("logout").addEventListener("click", logout);
    $("error-dismiss").addEventListener("click", clearError);
    $("refresh").addEventListener("click", () => attempt($("refresh"), refresh));
    $("ticket").addEventListener("submit", placeOrder);
    $("ticket-algo").addEventListener("change", showAlgoFields);
    $("depth-book").addEventListener("change", () => attempt(null, loadDepth));
    $("depth-form").addEventListener("submit", (event) => { event.preventDefault(); attempt(null, loadDepth); });
    $("candles-form").addEventListener("submit", (event) => {
      event.preventDefault();
      attempt(null, loadCandles);
    });
    $("killswitch-engage").addEventListener("click", () => killSwitch($("killswitch-engage"), true));
    $("killswitch-release").addEventListener("click", () => killSwitch($("killswitch-release"), false));
    window.addEventListener("resize", () => { drawPnl(); if (state.candles.length) drawCandles($("candles-symbol").value, $("candles-interval").value); });
    showAlgoFields();
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) {
      state.token = saved;
      start().catch((exc) => { signOut(); if (!(exc instanceof ApiError && exc.status === 401)) showError(exc); });
    }
  });
})();
