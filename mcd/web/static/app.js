// mini-container dashboard.
// Everything a container controls (names, labels, commands, log lines) reaches the
// page through textContent / createTextNode only: markup is never built from strings, anywhere.
"use strict";

(function () {
  const TOKEN_KEY = "mc-dashboard-token";
  const WINDOW_SECONDS = 300;

  const state = {
    token: null,
    control: false,
    containers: new Map(),     // id -> latest summary + stats + cpu_percent
    removing: new Set(),       // ids whose removal this tab asked for: not fetched again
    order: [],                 // ids in feed order
    host: {},
    history: new Map(),        // id -> [[t, cpu, mem], ...]
    sort: { key: "name", dir: 1 },
    filter: "",
    showStopped: true,
    route: null,
    lastSample: 0,
    interval: 2,
  };

  // ------------------------------------------------------------------ helpers
  const $ = (id) => document.getElementById(id);

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === null || v === undefined || v === false) continue;
        if (k === "class") el.className = v;
        else if (k === "text") el.textContent = v;
        else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
        else el.setAttribute(k, v === true ? "" : String(v));
      }
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
    return el;
  }

  function setText(el, text) {
    const s = text === null || text === undefined ? "" : String(text);
    if (el.textContent !== s) el.textContent = s;
  }

  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); }

  // Rebuild a block only when what it shows changed, so a selection (say, of the
  // id, to copy it) survives the once-a-second refresh.
  const lastShown = new WeakMap();
  function changed(el, data) {
    const key = JSON.stringify(data);
    if (lastShown.get(el) === key) return false;
    lastShown.set(el, key);
    return true;
  }

  function fmtBytes(n) {
    if (n === null || n === undefined || n < 0) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0, v = n;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    const text = i === 0 ? v.toFixed(0) : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
    return text.replace(/\.0+$|(\.\d*[1-9])0+$/, "$1") + " " + units[i];
  }

  function fmtPct(p) {
    if (p === null || p === undefined) return "–";
    return (p >= 100 ? p.toFixed(0) : p.toFixed(1)) + "%";
  }

  function fmtDuration(sec) {
    if (sec === null || sec === undefined || !isFinite(sec)) return "–";
    sec = Math.max(0, Math.floor(sec));
    const d = Math.floor(sec / 86400), hh = Math.floor(sec / 3600) % 24, m = Math.floor(sec / 60) % 60, s = sec % 60;
    if (d) return d + "d " + hh + "h";
    if (hh) return hh + "h " + m + "m";
    if (m) return m + "m " + s + "s";
    return s + "s";
  }

  function parseTime(iso) {
    if (!iso) return null;
    const t = Date.parse(iso);
    return isNaN(t) ? null : t / 1000;
  }

  function nowSec() { return Date.now() / 1000; }

  function unlimited(v) { return v === null || v === undefined || v < 0 || v >= 2 ** 60; }

  function toast(message, kind) {
    const el = h("div", { class: "toast" + (kind === "error" ? " error" : ""), role: kind === "error" ? "alert" : "status" }, message);
    $("toasts").appendChild(el);
    setTimeout(() => el.remove(), kind === "error" ? 8000 : 4000);
  }

  function api(path, opts) {
    opts = opts || {};
    const headers = Object.assign({ "Accept": "application/json" }, opts.headers || {});
    if (opts.method && opts.method !== "GET" && state.token) headers["X-MC-Token"] = state.token;
    return fetch(path, { method: opts.method || "GET", headers, cache: "no-store", credentials: "omit", signal: opts.signal })
      .then(async (r) => {
        const text = await r.text();
        let body = null;
        try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
        if (!r.ok) {
          const msg = body && body.error ? body.error.message : (r.status + " " + r.statusText);
          const err = new Error(msg); err.status = r.status; err.code = body && body.error && body.error.code;
          throw err;
        }
        return body;
      });
  }

  // ------------------------------------------------------------------ state helpers
  function statusInfo(c) {
    // -> [badge class, label]
    const s = c.status || "unknown";
    if (s === "running") return ["running", "running"];
    if (s === "paused") return ["paused", "paused"];
    if (s === "created") return ["created", "created"];
    if (s === "broken") return ["broken", "broken"];
    if (s === "stopped" || s === "exited") {
      let label = "exited";
      if (c.exit_code !== null && c.exit_code !== undefined) label += " (" + c.exit_code + ")";
      if (c.oom_killed) return ["oom", label + " · OOM killed"];
      return [c.exit_code ? "failed" : "stopped", label];
    }
    return ["", s];
  }

  function uptime(c) {
    if (c.status === "running" || c.status === "paused") {
      const t = parseTime(c.started_at);
      return t === null ? null : nowSec() - t;
    }
    return null;
  }

  function uptimeText(c) {
    const u = uptime(c);
    if (u !== null) return fmtDuration(u);
    const f = parseTime(c.finished_at);
    if (f !== null) return fmtDuration(nowSec() - f) + " ago";
    return "–";
  }

  function memLimit(c) {
    const l = c.stats && c.stats.memory_limit;
    return unlimited(l) ? null : l;
  }

  function sortValue(c, key) {
    const st = c.stats || {};
    switch (key) {
      case "uptime": { const u = uptime(c); return u === null ? -1 : u; }
      case "cpu": return c.cpu_percent === null || c.cpu_percent === undefined ? -1 : c.cpu_percent;
      case "mem": return st.memory_current === undefined || st.memory_current === null ? -1 : st.memory_current;
      case "pids": return st.pids_current === undefined || st.pids_current === null ? -1 : st.pids_current;
      case "restart_count": return c.restart_count || 0;
      case "status": return ({ running: 0, paused: 1, created: 2, broken: 3, stopped: 4 })[c.status] ?? 5;
      default: return String(c[key] || "").toLowerCase();
    }
  }

  function matchesFilter(c) {
    if (!state.showStopped && !(c.status === "running" || c.status === "paused")) return false;
    const f = state.filter.trim().toLowerCase();
    if (!f) return true;
    const labels = c.labels ? Object.entries(c.labels).map(([k, v]) => k + "=" + v).join(" ") : "";
    return [c.name, c.id, c.template, c.status, c.command, labels].some((x) => String(x || "").toLowerCase().includes(f));
  }

  function findContainer(ref) {
    if (state.containers.has(ref)) return state.containers.get(ref);
    for (const c of state.containers.values()) if (c.name === ref) return c;
    let hit = null;
    for (const c of state.containers.values()) if (c.id && c.id.startsWith(ref)) { if (hit) return null; hit = c; }
    return hit;
  }

  // ------------------------------------------------------------------ live feed
  let feed = null;
  function connectFeed() {
    if (feed) feed.close();
    feed = new EventSource("/web/feed");
    feed.addEventListener("open", () => setLive(true));
    feed.addEventListener("error", () => setLive(false));
    feed.addEventListener("history", (ev) => {
      const data = JSON.parse(ev.data);
      for (const [id, points] of Object.entries(data.series || {})) {
        const mine = state.history.get(id) || [];
        const merged = points.concat(mine.filter((p) => p[0] > (points.length ? points[points.length - 1][0] : 0)));
        state.history.set(id, merged);
      }
    });
    feed.addEventListener("sample", (ev) => onSample(JSON.parse(ev.data)));
  }

  function setLive(on) {
    const el = $("live");
    el.classList.toggle("on", on);
    el.classList.toggle("off", !on);
    setText($("live-text"), on ? "live" : "reconnecting");
  }

  function onSample(s) {
    setLive(true);
    state.host = s.host || {};
    state.interval = s.interval || 2;
    state.lastSample = s.t;
    const seen = new Set();
    state.order = [];
    for (const c of s.containers || []) {
      seen.add(c.id);
      state.order.push(c.id);
      state.containers.set(c.id, c);
      if (c.stats) {
        const hist = state.history.get(c.id) || [];
        if (!hist.length || hist[hist.length - 1][0] < s.t) hist.push([s.t, c.cpu_percent, c.stats.memory_current]);
        while (hist.length && hist[0][0] < s.t - WINDOW_SECONDS - 10) hist.shift();
        state.history.set(c.id, hist);
      }
    }
    for (const id of Array.from(state.containers.keys())) if (!seen.has(id)) state.containers.delete(id);
    if (s.error) setText($("live-text"), "daemon error");
    for (const e of s.events || []) onLiveEvent(e);
    document.body.dataset.samples = String((Number(document.body.dataset.samples) || 0) + 1);
    render();
  }

  // ------------------------------------------------------------------ overview
  function renderHost() {
    const host = state.host;
    let running = 0, stopped = 0, paused = 0, mem = 0, cpu = 0;
    for (const c of state.containers.values()) {
      if (c.status === "running") running++;
      else if (c.status === "paused") paused++;
      else stopped++;
      if (c.stats && c.stats.memory_current) mem += c.stats.memory_current;
      if (c.cpu_percent) cpu += c.cpu_percent;
    }
    setText($("count-running"), running);
    setText($("count-other"), stopped + " stopped" + (paused ? " · " + paused + " paused" : "") + " · " + state.containers.size + " total");
    const ncpu = host.cpus || host.ncpu || host.cpu_count;
    setText($("host-cpu-used"), fmtPct(cpu));
    setText($("host-cpus"), ncpu ? "of " + (ncpu * 100) + "% · " + ncpu + " CPU" + (ncpu > 1 ? "s" : "") : "–");
    const total = host.memory_total || host.mem_total;
    setText($("host-mem-used"), fmtBytes(mem));
    setText($("host-mem"), total ? "of " + fmtBytes(total) + " on the host" : "–");
    const mode = host.cgroup_mode || (host.cgroup && host.cgroup.mode) || host.cgroup_version;
    setText($("host-cgroup"), mode ? "cgroup " + mode : "cgroup –");
    const ver = host.version || host.daemon_version || (host.daemon && host.daemon.version);
    const kernel = host.kernel || host.kernel_version;
    setText($("host-version"), [ver ? "mcd " + ver : null, kernel ? "kernel " + kernel : null].filter(Boolean).join(" · ") || "mcd");
  }

  const rowCache = new Map();   // id -> {tr, cells}

  function buildRow(id) {
    const cells = {
      name: h("td", { class: "name" }),
      id: h("td", { class: "mono" }),
      template: h("td"),
      state: h("td"),
      uptime: h("td", { class: "num" }),
      cpu: h("td", { class: "num" }),
      mem: h("td", { class: "num" }),
      pids: h("td", { class: "num" }),
      restarts: h("td", { class: "num" }),
      actions: h("td", { class: "actions control-only" + (state.control ? "" : " hidden") }),
    };
    const link = h("a", { href: "#/c/" + encodeURIComponent(id) });
    const labels = h("span", { class: "labels" });
    cells.name.append(link, labels);
    cells.idText = h("span", { class: "id" });
    cells.id.append(cells.idText);
    cells.badge = h("span", { class: "badge" });
    cells.state.append(cells.badge);
    cells.cpuText = h("span");
    cells.cpuFill = h("div", { class: "fill" });
    cells.cpu.append(h("div", { class: "meter" }, cells.cpuText, h("div", { class: "bar" }, cells.cpuFill)));
    cells.memText = h("span");
    cells.memFill = h("div", { class: "fill" });
    cells.mem.append(h("div", { class: "meter mem" }, cells.memText, h("div", { class: "bar" }, cells.memFill)));
    cells.link = link;
    cells.labels = labels;
    const tr = h("tr", { "data-id": id }, cells.name, cells.id, cells.template, cells.state, cells.uptime,
      cells.cpu, cells.mem, cells.pids, cells.restarts, cells.actions);
    const entry = { tr, cells, actionsFor: null };
    rowCache.set(id, entry);
    return entry;
  }

  function updateRow(entry, c) {
    const x = entry.cells;
    entry.tr.dataset.name = c.name || "";
    entry.tr.dataset.status = c.status || "";
    setText(x.link, c.name || c.short_id);
    const labels = c.labels ? Object.entries(c.labels).map(([k, v]) => k + "=" + v).join("  ") : "";
    setText(x.labels, labels || (c.command || ""));
    x.labels.title = labels || c.command || "";
    setText(x.idText, c.short_id || (c.id || "").slice(0, 12));
    setText(x.template, c.template || "–");
    const [cls, label] = statusInfo(c);
    x.badge.className = "badge " + cls;
    setText(x.badge, label);
    setText(x.uptime, uptimeText(c));
    const live = c.stats && (c.status === "running" || c.status === "paused");
    setText(x.cpuText, live ? fmtPct(c.cpu_percent) : "–");
    const ncpu = state.host.cpus || 1;
    x.cpuFill.style.width = live && c.cpu_percent ? Math.min(100, c.cpu_percent / ncpu) + "%" : "0";
    const lim = memLimit(c);
    const used = live ? c.stats.memory_current : null;
    setText(x.memText, live ? fmtBytes(used) + (lim ? " / " + fmtBytes(lim) : "") : "–");
    const frac = lim && used ? used / lim : 0;
    x.memFill.style.width = (frac * 100).toFixed(1) + "%";
    x.memFill.classList.toggle("hot", frac > 0.9);
    const pids = live ? c.stats.pids_current : null;
    const plim = live && !unlimited(c.stats.pids_limit) ? c.stats.pids_limit : null;
    setText(x.pids, pids === null || pids === undefined ? "–" : String(pids));
    x.pids.title = plim ? "limit " + plim : "";
    setText(x.restarts, String(c.restart_count || 0));
    x.actions.classList.toggle("hidden", !state.control);
    const key = state.control + ":" + c.status;
    if (state.control && entry.actionsFor !== key) {
      entry.actionsFor = key;
      clear(x.actions);
      x.actions.append(actionButtons(c, true));
    }
  }

  function renderOverview() {
    renderHost();
    const tbody = $("rows");
    const items = Array.from(state.containers.values()).filter(matchesFilter);
    const { key, dir } = state.sort;
    items.sort((a, b) => {
      const va = sortValue(a, key), vb = sortValue(b, key);
      if (va < vb) return -dir;
      if (va > vb) return dir;
      return String(a.name).localeCompare(String(b.name));
    });
    const wanted = new Set(items.map((c) => c.id));
    for (const [id, entry] of rowCache) {
      if (!state.containers.has(id)) { entry.tr.remove(); rowCache.delete(id); }
      else if (!wanted.has(id)) entry.tr.remove();
    }
    let prev = null;
    for (const c of items) {
      const entry = rowCache.get(c.id) || buildRow(c.id);
      updateRow(entry, c);
      const want = prev ? prev.nextSibling : tbody.firstChild;
      if (want !== entry.tr) tbody.insertBefore(entry.tr, want);
      prev = entry.tr;
    }
    const empty = $("empty");
    if (!items.length) {
      setText(empty, state.containers.size ? "No container matches the filter." :
        (state.lastSample ? "No containers yet. Create one with  mcctl run -d --name web minimal sh -c '…'" : "Waiting for the first sample…"));
    }
    empty.classList.toggle("hidden", items.length > 0);
    for (const th of document.querySelectorAll("#containers th.sortable")) {
      th.setAttribute("aria-sort", th.dataset.sort === key ? (dir > 0 ? "ascending" : "descending") : "none");
    }
  }

  // ------------------------------------------------------------------ control
  function actionButtons(c, compact) {
    // The table row keeps the frequent ones; the container page has them all.
    const running = c.status === "running", paused = c.status === "paused";
    const wrap = h("span", { class: "row-actions" });
    const add = (label, action, opts) => {
      opts = opts || {};
      const b = h("button", { type: "button", class: "btn" + (opts.danger ? " danger" : "") + (compact ? " btn-sm" : ""), "data-action": action, text: label });
      b.addEventListener("click", (ev) => { ev.preventDefault(); ev.stopPropagation(); doAction(c, action, b, opts); });
      wrap.append(b);
    };
    if (running) { add("Stop", "stop"); add("Restart", "restart"); if (!compact) add("Pause", "pause"); }
    else if (paused) { add("Unpause", "unpause"); if (!compact) add("Stop", "stop"); }
    else { add("Start", "start"); }
    add("Remove", "remove", { danger: true, confirm: true });
    return wrap;
  }

  function doAction(c, action, button, opts) {
    if (opts.confirm && !button.classList.contains("armed")) {
      button.classList.add("armed");
      const old = button.textContent;
      button.textContent = "Confirm";
      setTimeout(() => { button.classList.remove("armed"); button.textContent = old; }, 4000);
      return;
    }
    const ref = encodeURIComponent(c.id);
    // From here on nothing asks for this container again: a refresh racing the removal would
    // only fetch a 404 (which the browser logs as an error whatever the page does with it).
    if (action === "remove") state.removing.add(c.id);
    const req = action === "remove"
      ? api("/v1/containers/" + ref + "?force=1", { method: "DELETE" })
      : api("/v1/containers/" + ref + "/" + action, { method: "POST" });
    button.disabled = true;
    const label = button.textContent;
    button.textContent = ({ stop: "Stopping…", restart: "Restarting…", start: "Starting…", pause: "Pausing…", unpause: "Resuming…", remove: "Removing…" })[action] || label;
    req.then(() => {
      toast((c.name || c.short_id) + ": " + action + " done");
      if (action === "remove" && state.route && state.route.view === "container") location.hash = "#/";
    }).catch((err) => {
      if (action === "remove") state.removing.delete(c.id);
      toast((c.name || c.short_id) + ": " + action + " failed: " + err.message, "error");
    }).finally(() => {
      button.disabled = false;
      button.textContent = label;
    });
  }

  // ------------------------------------------------------------------ container page
  const page = { ref: null, id: null, inspect: null, logsAbort: null, topTimer: null, tab: "logs", actionsKey: null, eventKeys: new Set() };

  function openContainer(ref) {
    closeContainer();
    page.ref = ref;
    page.openedAt = nowSec();
    clear($("logs")); clear($("events")); clear($("top-rows")); clear($("top-head"));
    setText($("inspect"), "");
    $("events-empty").classList.remove("hidden");
    setText($("c-name"), ref);
    loadInspect();
    startLogs();
    startEvents();
    selectTab(page.tab);
  }

  function closeContainer() {
    if (page.logsAbort) page.logsAbort.abort();
    if (page.topTimer) clearInterval(page.topTimer);
    clearTimeout(page.inspectTimer);
    Object.assign(page, { ref: null, id: null, inspect: null, logsAbort: null, topTimer: null, actionsKey: null });
  }

  function loadInspect() {
    const ref = page.ref;
    if (page.id && state.removing.has(page.id)) return Promise.resolve();
    return api("/v1/containers/" + encodeURIComponent(ref)).then((data) => {
      if (page.ref !== ref) return;
      page.inspect = data;
      page.id = data.id;
      setText($("inspect"), JSON.stringify(data, null, 2));
      renderContainer();
    }).catch((err) => {
      if (page.ref !== ref) return;
      if (err.status === 404) showMissing("No container " + ref + ": " + err.message);
      else toast("inspect " + ref + ": " + err.message, "error");
    });
  }

  function showMissing(text) {
    for (const v of document.querySelectorAll(".view")) v.classList.add("hidden");
    $("view-missing").classList.remove("hidden");
    setText($("missing-text"), text);
  }

  function currentContainer() {
    const live = page.id ? state.containers.get(page.id) : findContainer(page.ref);
    if (live) return live;
    const i = page.inspect;
    if (!i) return null;
    const st = i.state || {};
    return Object.assign({ id: i.id, name: i.name, short_id: (i.id || "").slice(0, 12) }, st);
  }

  function renderContainer() {
    const c = currentContainer();
    if (!c) return;
    if (!page.id && c.id) page.id = c.id;
    setText($("c-name"), c.name || c.short_id);
    document.title = (c.name || c.short_id) + " · mini-container";
    const [cls, label] = statusInfo(c);
    $("c-state").className = "badge " + cls;
    setText($("c-state"), label);
    setText($("c-id"), c.short_id || (c.id || "").slice(0, 12));
    const u = uptime(c);
    setText($("c-uptime"), u !== null ? "up " + fmtDuration(u) : (c.finished_at ? "exited " + uptimeText(c) : ""));
    renderCrumbs(c.name || c.short_id);
    const key = state.control + ":" + c.status;
    const acts = $("c-actions");
    acts.classList.toggle("hidden", !state.control);
    if (state.control && page.actionsKey !== key) {
      page.actionsKey = key;
      clear(acts);
      acts.append(actionButtons(c, false));
    }
    renderNow(c);
    renderLimits(c);
    renderDetails(c);
    drawCharts(c);
  }

  function renderNow(c) {
    const live = c.stats && (c.status === "running" || c.status === "paused");
    setText($("cpu-now"), live ? fmtPct(c.cpu_percent) : "–");
    const el = $("mem-now");
    clear(el);
    if (live) {
      el.append(fmtBytes(c.stats.memory_current));
      const lim = memLimit(c);
      if (lim) el.append(h("span", { class: "of", text: " / " + fmtBytes(lim) }));
    } else el.append("–");
  }

  function resourcesSet() {
    const spec = page.inspect && page.inspect.spec;
    return (spec && spec.linux && spec.linux.resources) || (spec && spec.resources) || {};
  }

  function effectiveLimits() {
    const i = page.inspect || {};
    return i.effective || i.effective_limits || i.limits || (i.state && i.state.effective) || {};
  }

  function limitText(kind, v) {
    if (v === null || v === undefined) return "–";
    if (kind === "bytes") return unlimited(v) ? "unlimited" : fmtBytes(v);
    if (kind === "count") return v < 0 || v >= 2 ** 60 ? "unlimited" : String(v);
    return String(v);
  }

  function cpusText(quota, period) {
    if (quota === null || quota === undefined) return null;
    if (quota < 0) return "unlimited";
    return (quota / (period || 100000)).toFixed(2).replace(/\.?0+$/, "") + " CPU";
  }

  function renderLimits(c) {
    const set = resourcesSet(), eff = effectiveLimits(), st = c.stats || {};
    const live = c.stats && (c.status === "running" || c.status === "paused");
    // The kernel's view exists only while the cgroup does; null there means "no limit".
    const haveEff = live && eff && !eff.error && Object.keys(eff).length > 0;
    const effText = (kind, key) => !haveEff ? "–" : (eff[key] === null || eff[key] === undefined ? (kind === "cpus" ? "unlimited" : "unlimited") : limitText(kind, eff[key]));
    const rows = [
      ["Memory", limitText("bytes", set.memory) === "–" ? "unlimited" : limitText("bytes", set.memory), effText("bytes", "memory"), live ? fmtBytes(st.memory_current) : "–"],
      ["Memory + swap", set.memory_swap === null || set.memory_swap === undefined ? "unlimited" : limitText("bytes", set.memory_swap), effText("bytes", "memory_swap"), "–"],
      ["CPU", cpusText(set.cpu_quota, set.cpu_period) || "unlimited",
        haveEff ? (cpusText(eff.cpu_quota, eff.cpu_period) || "unlimited") : "–", live ? fmtPct(c.cpu_percent) : "–"],
      ["CPU shares", set.cpu_shares ? String(set.cpu_shares) : "default", effText("count", "cpu_shares"), "–"],
      ["CPU set", set.cpuset_cpus || "all", haveEff ? (eff.cpuset_cpus || "all") : "–", "–"],
      ["PIDs", limitText("count", set.pids_limit) === "–" ? "unlimited" : limitText("count", set.pids_limit), effText("count", "pids_limit"), live ? String(st.pids_current ?? "–") : "–"],
    ];
    if (live && (st.throttled_periods || st.oom_kills)) {
      rows.push(["Throttled", "", "", (st.throttled_periods || 0) + " periods"]);
      rows.push(["OOM kills", "", "", String(st.oom_kills || 0)]);
    }
    const tbody = $("c-limits");
    if (!changed(tbody, rows)) return;
    clear(tbody);
    for (const [k, a, b, n] of rows) tbody.append(h("tr", null, h("th", { text: k }), h("td", { text: a }), h("td", { text: b }), h("td", { text: n })));
  }

  function renderDetails(c) {
    const i = page.inspect || {};
    const spec = i.spec || {};
    const proc = spec.process || {};
    const labels = spec.labels || c.labels || {};
    const rows = [
      ["ID", c.id || i.id],
      ["Template", c.template || (spec.root && spec.root.template)],
      ["Command", c.command || (proc.args ? proc.args.join(" ") : null)],
      ["Created", c.created_at ? new Date(c.created_at).toLocaleString() : null],
      ["Started", c.started_at ? new Date(c.started_at).toLocaleString() : null],
      ["Finished", c.finished_at ? new Date(c.finished_at).toLocaleString() : null],
      ["PID", c.pid],
      ["Restart policy", (spec.restart_policy || "no") + " · " + (c.restart_count || 0) + " restart" + (c.restart_count === 1 ? "" : "s")],
      ["Hostname", spec.hostname],
    ];
    // Network (docs/networking.md): the network, and while it runs its address and ports.
    const net = i.network_settings || null;
    const mode = (spec.networking && spec.networking.mode) || c.network;
    if (mode) rows.push(["Network", mode]);
    if (net) {
      rows.push(["IP address", net.ip ? net.ip + (net.gateway ? " (gateway " + net.gateway + ")" : "") : null]);
      rows.push(["MAC address", net.mac]);
    }
    const ports = (net && net.ports) || c.ports || [];
    if (ports.length) {
      rows.push(["Ports", ports.map((p) => (p.hostIP || "0.0.0.0") + ":" + p.hostPort + " → " +
                                           p.containerPort + "/" + p.protocol).join(", ")]);
    }
    const tbody = $("c-details");
    if (!changed(tbody, [rows, labels])) return;
    clear(tbody);
    for (const [k, v] of rows) {
      if (v === null || v === undefined || v === "") continue;
      tbody.append(h("tr", null, h("th", { text: k }), h("td", { class: k === "ID" || k === "Command" ? "mono" : null, text: String(v) })));
    }
    const entries = Object.entries(labels);
    if (entries.length) {
      const td = h("td", { class: "mono" });
      entries.forEach(([k, v], n) => { if (n) td.append(h("br")); td.append(k + "=" + v); });
      tbody.append(h("tr", null, h("th", { text: "Labels" }), td));
    }
  }

  // ---- charts: canvas, drawn by hand
  function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

  function niceMax(v) {
    if (v <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    // Four gridlines: these maxima give round steps (0.25, 0.5, 1, 1.5, 2, 2.5 x 10^k).
    for (const m of [1, 2, 4, 6, 8, 10]) if (m * p >= v - 1e-9) return m * p;
    return 10 * p;
  }

  function drawChart(canvas, points, opts) {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, hgt = canvas.clientHeight;
    if (!w || !hgt) return;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(hgt * dpr)) {
      canvas.width = Math.round(w * dpr); canvas.height = Math.round(hgt * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, hgt);
    const padL = 58, padR = 10, padT = 10, padB = 22;
    const pw = w - padL - padR, ph = hgt - padT - padB;
    const tEnd = state.lastSample || nowSec();
    // The window grows with the data (1, 2, then 5 minutes) so a page opened a few
    // seconds ago still shows a readable line instead of a dot at the right edge.
    const first = points.length ? points[0][0] : tEnd;
    const span = tEnd - first;
    const win = span <= 55 ? 60 : span <= 115 ? 120 : WINDOW_SECONDS;
    const tStart = tEnd - win;
    const vals = points.filter((p) => p[0] >= tStart && p[1] !== null && p[1] !== undefined);
    let peak = vals.reduce((m, p) => Math.max(m, p[1]), 0);
    if (opts.limit) peak = Math.max(peak, opts.limit);
    const unit = opts.unit || 1;     // bytes are scaled to MiB so the ticks are round
    const ymax = niceMax(Math.max(peak * 1.1, opts.minMax) / unit) * unit;
    const x = (t) => padL + ((t - tStart) / win) * pw;
    const y = (v) => padT + ph - (v / ymax) * ph;
    const font = "11px " + cssVar("--sans");
    ctx.font = font;
    ctx.fillStyle = cssVar("--faint");
    ctx.strokeStyle = cssVar("--chart-grid");
    ctx.lineWidth = 1;
    ctx.textBaseline = "middle";
    ctx.textAlign = "right";
    for (let i = 0; i <= 4; i++) {
      const v = (ymax / 4) * i, yy = Math.round(y(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(padL, yy); ctx.lineTo(padL + pw, yy); ctx.stroke();
      ctx.fillText(i === 0 ? "0" : opts.fmt(v), padL - 8, yy);
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "alphabetic";
    const step = win === 60 ? 15 : win === 120 ? 30 : 60;
    for (let s = win; s >= 0; s -= step) {
      const label = s === 0 ? "now" : s % 60 === 0 ? "-" + s / 60 + "m" : "-" + s + "s";
      ctx.fillText(label, Math.min(Math.max(x(tEnd - s), padL + 10), padL + pw - 12), hgt - 6);
    }
    if (opts.limit) {
      const yy = Math.round(y(opts.limit)) + 0.5;
      ctx.save();
      ctx.strokeStyle = cssVar("--chart-limit");
      ctx.setLineDash([5, 4]);
      ctx.beginPath(); ctx.moveTo(padL, yy); ctx.lineTo(padL + pw, yy); ctx.stroke();
      ctx.restore();
      ctx.fillStyle = cssVar("--chart-limit");
      ctx.textAlign = "left";
      ctx.fillText("limit " + opts.fmt(opts.limit), padL + 6, yy - 5);
    }
    if (!vals.length) {
      ctx.fillStyle = cssVar("--faint");
      ctx.textAlign = "center";
      ctx.fillText(opts.emptyText, padL + pw / 2, padT + ph / 2);
      return;
    }
    const color = cssVar(opts.color);
    // Break the line where samples are missing (container stopped, page closed).
    const gap = Math.max(3, state.interval * 2.5);
    const runs = [];
    let run = [];
    for (const p of vals) {
      if (run.length && p[0] - run[run.length - 1][0] > gap) { runs.push(run); run = []; }
      run.push(p);
    }
    runs.push(run);
    for (const r of runs) {
      const grad = ctx.createLinearGradient(0, padT, 0, padT + ph);
      grad.addColorStop(0, color + "55");
      grad.addColorStop(1, color + "05");
      ctx.beginPath();
      ctx.moveTo(x(r[0][0]), y(0));
      for (const p of r) ctx.lineTo(x(p[0]), y(p[1]));
      ctx.lineTo(x(r[r.length - 1][0]), y(0));
      ctx.closePath();
      ctx.fillStyle = grad;
      ctx.fill();
      ctx.beginPath();
      r.forEach((p, n) => (n ? ctx.lineTo(x(p[0]), y(p[1])) : ctx.moveTo(x(p[0]), y(p[1]))));
      if (r.length === 1) ctx.lineTo(x(r[0][0]) + 2, y(r[0][1]));
      ctx.strokeStyle = color;
      ctx.lineWidth = 1.75;
      ctx.lineJoin = "round";
      ctx.stroke();
    }
    // Where the newest point landed, in CSS pixels: lets a test read the drawing back.
    const last = vals[vals.length - 1];
    canvas.dataset.lastX = String(Math.round(x(last[0])));
    canvas.dataset.lastY = String(Math.round(y(last[1])));
  }

  function drawCharts(c) {
    const hist = state.history.get(c.id) || [];
    const empty = c.status === "running" || c.status === "paused" ? "waiting for samples…" : "not running";
    const cpuCanvas = $("chart-cpu"), memCanvas = $("chart-mem");
    drawChart(cpuCanvas, hist.map((p) => [p[0], p[1]]),
      { color: "--chart-cpu", minMax: 4, fmt: (v) => (v >= 10 || v === 0 ? v.toFixed(0) : v.toFixed(1)) + "%", emptyText: empty });
    drawChart(memCanvas, hist.map((p) => [p[0], p[2]]),
      { color: "--chart-mem", minMax: 4 * 1024 * 1024, unit: 1024 * 1024, limit: memLimit(c), fmt: fmtBytes, emptyText: empty });
    const last = hist.length ? hist[hist.length - 1] : null;
    memCanvas.dataset.last = last && last[2] !== null && last[2] !== undefined ? String(last[2]) : "";
    memCanvas.dataset.points = String(hist.length);
    cpuCanvas.dataset.points = String(hist.length);
  }

  // ---- logs: a streamed fetch of /logs?follow=1, read line by line
  function startLogs() {
    if (page.logsAbort) page.logsAbort.abort();
    const ref = page.ref;
    const ctrl = new AbortController();
    page.logsAbort = ctrl;
    page.logsEnded = false;
    const pre = $("logs");
    clear(pre);
    const follow = $("follow").checked;
    const ts = $("timestamps").checked;
    const q = "tail=500" + (follow ? "&follow=1" : "") + (ts ? "&timestamps=1" : "");
    fetch("/v1/containers/" + encodeURIComponent(ref) + "/logs?" + q, { signal: ctrl.signal, cache: "no-store", credentials: "omit" })
      .then(async (r) => {
        if (!r.ok) {
          let msg = r.status + " " + r.statusText;
          try { const b = await r.json(); if (b && b.error) msg = b.error.message; } catch (e) { /* not JSON */ }
          throw new Error(msg);
        }
        const reader = r.body.getReader();
        const dec = new TextDecoder();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let i;
          const lines = [];
          while ((i = buf.indexOf("\n")) >= 0) { lines.push(buf.slice(0, i)); buf = buf.slice(i + 1); }
          if (lines.length) appendLogLines(pre, lines, ts);
        }
        if (buf) appendLogLines(pre, [buf], ts);
        if (page.logsAbort === ctrl) page.logsEnded = true;
        if (page.logsAbort === ctrl) pre.append(h("span", { class: "note", text: follow ? "— log stream ended —\n" : "— end of log —\n" }));
      })
      .catch((err) => {
        if (err.name === "AbortError") return;
        pre.append(h("span", { class: "note err", text: "logs: " + err.message + "\n" }));
      });
  }

  function appendLogLines(pre, lines, ts) {
    const atBottom = pre.parentElement.scrollHeight - pre.parentElement.scrollTop - pre.parentElement.clientHeight < 40;
    const frag = document.createDocumentFragment();
    for (const raw of lines) {
      let text = raw, stream = null, time = null;
      if (raw.startsWith("{")) {
        try {
          const o = JSON.parse(raw);
          text = o.line ?? o.log ?? o.message ?? o.msg ?? raw;
          stream = o.stream || null;
          time = o.time || o.ts || o.timestamp || null;
        } catch (e) { /* a plain line that starts with { */ }
      }
      text = String(text).replace(/\n$/, "");
      const line = h("span", { class: stream === "stderr" ? "err" : null });
      if (ts && time) line.append(h("span", { class: "ts", text: String(time) + " " }));
      line.append(text + "\n");
      frag.append(line);
    }
    pre.append(frag);
    // Keep the page light on chatty containers: the last 5000 lines.
    while (pre.childNodes.length > 5000) pre.removeChild(pre.firstChild);
    if (atBottom) pre.parentElement.scrollTop = pre.parentElement.scrollHeight;
  }

  // ---- events: the API's SSE stream, filtered to this container
  // Events arrive on the live feed (one connection per tab: browsers allow six per
  // host across all tabs); the history comes once from GET /v1/events?stream=0.
  function eventIsMine(e) {
    const id = e.id || e.container_id;
    const name = e.name;
    return (id && page.id && String(id) === page.id) ||
      (name && (name === page.ref || (page.inspect && name === page.inspect.name)));
  }

  function startEvents() {
    page.eventKeys = new Set();
    const ref = page.ref;
    api("/v1/events?stream=0").then((list) => {
      if (page.ref !== ref || !Array.isArray(list)) return;
      for (const e of list) if (eventIsMine(e)) addEvent(e);
    }).catch(() => { /* the live ones still come */ });
  }

  function onLiveEvent(e) {
    if (!page.ref || !eventIsMine(e)) return;
    addEvent(e);
    const kind = e.type || e.event;
    if (kind === "destroyed") {
      toast((e.name || page.ref) + " was removed");
      location.hash = "#/";
      return;
    }
    // A lifecycle event changes what inspect shows (pid, started_at, exit code);
    // a (re)start begins a new log stream, the old follow ended with the old process.
    clearTimeout(page.inspectTimer);
    page.inspectTimer = setTimeout(loadInspect, 250);
    if ((kind === "started" || kind === "restarted") && $("follow").checked && page.logsEnded) startLogs();
  }

  function addEvent(e) {
    const key = [e.time, e.type, e.id].join("|");
    if (page.eventKeys.has(key)) return;
    page.eventKeys.add(key);
    $("events-empty").classList.add("hidden");
    const kind = e.type || e.event || e.action || e.status || "event";
    const t = parseTime(e.time || e.timestamp || e.at) || (typeof e.time === "number" ? e.time : nowSec());
    const why = [];
    if (e.exit_code !== undefined && e.exit_code !== null) why.push("exit code " + e.exit_code);
    if (e.oom_killed) why.push("OOM killed");
    if (e.signal) why.push("signal " + e.signal);
    if (e.message) why.push(String(e.message));
    const li = h("li", { "data-t": String(t) },
      h("time", { text: new Date(t * 1000).toLocaleTimeString() }),
      h("span", { class: "what", text: String(kind) }),
      h("span", { class: "why", text: why.join(" · ") }));
    // Newest first, whichever of the history and the live feed arrived first.
    const list = $("events");
    const after = Array.from(list.children).find((x) => Number(x.dataset.t) < t);
    list.insertBefore(li, after || null);
  }

  // ---- processes
  function loadTop() {
    const ref = page.id || page.ref;
    const c = currentContainer();
    if (c && !(c.status === "running" || c.status === "paused")) {
      clear($("top-rows"));
      setText($("top-empty"), "Not running: no processes.");
      $("top-empty").classList.remove("hidden");
      return Promise.resolve();
    }
    return api("/v1/containers/" + encodeURIComponent(ref) + "/top").then((data) => {
      if ((page.id || page.ref) !== ref) return;
      let titles, rows;
      if (data && Array.isArray(data.titles)) { titles = data.titles; rows = data.processes || []; }
      else {
        const list = Array.isArray(data) ? data : (data && data.processes) || [];
        titles = list.length ? Object.keys(list[0]) : ["pid", "command"];
        rows = list.map((p) => titles.map((k) => p[k]));
      }
      const head = $("top-head"), body = $("top-rows");
      clear(head); clear(body);
      const kb = titles.map((t) => /^rss_kb$/i.test(t));
      const numeric = titles.map((t) => /^(pid|ppid|uid|rss_kb|rss)$/i.test(t));
      for (const [n, t] of titles.entries()) head.append(h("th", { class: numeric[n] ? "num" : null, text: kb[n] ? "RSS" : String(t).toUpperCase() }));
      for (const r of rows) {
        body.append(h("tr", null, r.map((v, n) => h("td", {
          class: /cmd|command|args/i.test(titles[n]) ? "cmd" : numeric[n] ? "num" : null,
          text: kb[n] && typeof v === "number" ? fmtBytes(v * 1024) : Array.isArray(v) ? v.join(" ") : String(v ?? ""),
        }))));
      }
      $("top-empty").classList.toggle("hidden", rows.length > 0);
    }).catch((err) => {
      clear($("top-rows"));
      setText($("top-empty"), err.status === 409 ? "Not running: no processes." : "top: " + err.message);
      $("top-empty").classList.remove("hidden");
    });
  }

  function selectTab(tab) {
    page.tab = tab;
    for (const b of document.querySelectorAll(".tab")) b.setAttribute("aria-selected", String(b.dataset.tab === tab));
    for (const p of document.querySelectorAll(".tab-panel")) p.classList.toggle("hidden", p.dataset.panel !== tab);
    $("logs-tools").classList.toggle("hidden", tab !== "logs");
    if (page.topTimer) { clearInterval(page.topTimer); page.topTimer = null; }
    if (tab === "top" && page.ref) { loadTop(); page.topTimer = setInterval(loadTop, 3000); }
  }

  // ------------------------------------------------------------------ routing
  function renderCrumbs(here) {
    const el = $("crumbs");
    clear(el);
    if (!here) return;
    el.append(h("a", { href: "#/", text: "Containers" }), h("span", { class: "sep", text: "/" }), h("span", { class: "here", text: here }));
  }

  function route() {
    let hash = location.hash.replace(/^#/, "");
    const m = hash.match(/(^|[&?\/])token=([A-Za-z0-9_-]+)/);
    if (m) {
      sessionStorage.setItem(TOKEN_KEY, m[2]);
      hash = hash.replace(m[0], m[1] === "/" ? "/" : "").replace(/^[&?]/, "");
      // The token leaves the address bar (and screenshots, and history) at once.
      history.replaceState(null, "", location.pathname + (hash ? "#" + hash : "#/"));
      loadSession();
    }
    const cm = hash.match(/^\/c\/([^/?&]+)/);
    const r = cm ? { view: "container", ref: decodeURIComponent(cm[1]) } : { view: "overview" };
    const same = state.route && state.route.view === r.view && state.route.ref === r.ref;
    state.route = r;
    for (const v of document.querySelectorAll(".view")) v.classList.add("hidden");
    if (r.view === "container") {
      $("view-container").classList.remove("hidden");
      if (!same) openContainer(r.ref);
      renderContainer();
    } else {
      closeContainer();
      document.title = "Containers · mini-container";
      renderCrumbs(null);
      $("view-overview").classList.remove("hidden");
      renderOverview();
    }
  }

  function render() {
    if (!state.route) return;
    if (state.route.view === "container") renderContainer();
    else renderOverview();
  }

  function loadSession() {
    state.token = sessionStorage.getItem(TOKEN_KEY);
    const headers = state.token ? { "X-MC-Token": state.token } : {};
    return fetch("/web/session", { headers, cache: "no-store", credentials: "omit" })
      .then((r) => r.json())
      .then((s) => {
        if (state.token && !s.control) {
          toast("The dashboard token was refused (the daemon may have a new one): read-only.", "error");
          sessionStorage.removeItem(TOKEN_KEY);
          state.token = null;
        }
        setControl(!!s.control);
      })
      .catch(() => setControl(false));
  }

  function setControl(on) {
    state.control = on;
    document.body.classList.toggle("can-control", on);
    const mode = $("mode");
    setText(mode, on ? "control" : "read-only");
    mode.classList.toggle("control", on);
    mode.title = on ? "This tab holds the control token: start, stop and remove are enabled"
      : "Read-only. Open the URL that `mcctl dashboard` prints to enable control actions";
    $("lock").classList.toggle("hidden", !on);
    for (const el of document.querySelectorAll("th.control-only")) el.classList.toggle("hidden", !on);
    page.actionsKey = null;
    for (const e of rowCache.values()) e.actionsFor = null;
    if (!on) {
      for (const e of rowCache.values()) clear(e.cells.actions);
      clear($("c-actions"));
    }
    render();
  }

  // ------------------------------------------------------------------ wiring
  document.addEventListener("DOMContentLoaded", () => {
    for (const th of document.querySelectorAll("#containers th.sortable")) {
      th.addEventListener("click", () => {
        const key = th.dataset.sort;
        state.sort = state.sort.key === key ? { key, dir: -state.sort.dir } : { key, dir: ["cpu", "mem", "pids", "uptime", "restart_count"].includes(key) ? -1 : 1 };
        renderOverview();
      });
    }
    $("filter").addEventListener("input", (e) => { state.filter = e.target.value; renderOverview(); });
    $("show-stopped").addEventListener("change", (e) => { state.showStopped = e.target.checked; renderOverview(); });
    for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => selectTab(b.dataset.tab));
    $("follow").addEventListener("change", () => page.ref && startLogs());
    $("timestamps").addEventListener("change", () => page.ref && startLogs());
    $("lock").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); state.token = null; setControl(false); });
    window.addEventListener("hashchange", route);
    window.addEventListener("resize", () => render());
    setInterval(() => render(), 1000);   // uptimes tick between samples
    state.token = sessionStorage.getItem(TOKEN_KEY);
    route();
    loadSession();
    connectFeed();
  });
})();
