// The status page, live: every record in a Map, kept current from /events (server-sent events).
//
// - The server-rendered page carries the feed position it was read at (body data-event-id); the
//   script loads every record from /api/clients (pages sorted by name) and follows
//   /events?lastEventId=<that position>. Changes that arrive while the records load wait and are
//   then applied by `version` (a record's version rises by one per change), so a change is never
//   lost nor applied twice between the first paint and the stream.
// - `resync` (the page's position is older than the server's backlog) replaces the records with
//   its snapshot, or, when the snapshot is truncated, loads every record again.
// - Rendering: one page of rows (PAGE_SIZE), reused <tr> elements, text set only when it changed,
//   in an animation frame (requestAnimationFrame), at most once per RENDER_MS however many
//   changes arrived.
// - Names and every other value are attacker-controlled: they only ever go into textContent,
//   attribute values and URL components (encodeURIComponent), never into HTML.
(() => {
  "use strict";

  const STATUSES = ["online", "reconnecting", "offline"];
  const PAGE_SIZE = 50;
  const RENDER_MS = 200; // at most five renders a second, however many changes arrive
  const LOAD_LIMIT = 5000; // records per /api/clients request while loading
  const SAMPLE_MS = 10000; // sparkline: one sample of the counts every 10 s ...
  const WINDOW_MS = 3600 * 1000; // ... over the last hour
  const STATS_MS = 10000; // /api/stats (responsive) this often
  const NODES_MS = 15000; // /api/nodes this often (not at all once it answered 404)
  const CLOCK_MS = 5000; // relative times ("3 min ago") refreshed this often
  const ROWS_MS = 30000; // the rows shown are re-read this often (heartbeat times, sockets, ip)
  const RETRY_MS = 3000; // a closed stream or a failed load is retried after this
  const SVG = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);

  const state = {
    clients: new Map(), // name -> record (the /api/clients shape, plus `key` for search)
    sorted: { online: [], reconnecting: [], offline: [] }, // names per status, sorted
    counts: { online: 0, reconnecting: 0, offline: 0, guests: 0 },
    loaded: false,
    loading: 0, // generation of the load in progress (0: none)
    pending: [], // [event, data] received while loading
    lastEventId: document.body.dataset.eventId || "",
    source: null,
    filter: { status: "", q: "" },
    page: 0,
    frame: 0, // non-zero while a render is scheduled
    renderedAt: -Infinity, // performance.now() of the last render
    selected: null, // name whose timeline is open
    timelineTimer: 0,
    samples: [], // {t, online, reconnecting}
    responsive: null,
    details: new Set(), // names whose full record is being fetched (guests' display names)
    rows: [], // the reused <tr> elements
    startedAt: performance.now(),
    segments: [], // what the rows show: [{status, after, count}] (see refreshRows)
  };

  // --- small helpers -------------------------------------------------------------------------
  // The text last written is kept on the element: no DOM read, and no write when unchanged.
  function setText(element, text) {
    if (element.shownText !== text) {
      element.shownText = text;
      element.textContent = text;
    }
  }

  function compare(a, b) {
    return a < b ? -1 : a > b ? 1 : 0;
  }

  // Where `name` is or would go in the sorted array `names` (binary search).
  function position(names, name) {
    let low = 0;
    let high = names.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (names[middle] < name) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  function insertName(names, name) {
    const at = position(names, name);
    if (names[at] !== name) names.splice(at, 0, name);
  }

  function removeName(names, name) {
    const at = position(names, name);
    if (names[at] === name) names.splice(at, 1);
  }

  function searchKey(record) {
    return (record.name + "\n" + (record.display_name || "")).toLowerCase();
  }

  function ago(iso, now) {
    if (!iso) return "—";
    const then = Date.parse(iso);
    if (Number.isNaN(then)) return String(iso);
    const seconds = Math.round((now - then) / 1000);
    if (seconds < 10) return "just now";
    if (seconds < 60) return Math.floor(seconds / 10) * 10 + " s ago"; // coarse: less relayout
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min ago";
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return hours + " h ago";
    return Math.floor(hours / 24) + " d ago";
  }

  function setTime(element, iso, now) {
    if (!iso) {
      setText(element, "—");
      if (element.shownTime) {
        element.shownTime = "";
        element.dateTime = "";
      }
      return;
    }
    if (element.shownTime !== iso) {
      element.shownTime = iso;
      element.dateTime = iso;
      element.title = iso;
    }
    setText(element, ago(iso, now));
  }

  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) {
      const error = new Error(url + ": " + response.status);
      error.status = response.status;
      throw error;
    }
    return response.json();
  }

  function clientURL(name) {
    return "/api/clients/" + encodeURIComponent(name);
  }

  // --- the records ---------------------------------------------------------------------------
  function count(record, sign) {
    if (record.status in state.counts) state.counts[record.status] += sign;
    if (record.guest) state.counts.guests += sign;
  }

  function put(record) {
    if (!STATUSES.includes(record.status)) record.status = "offline"; // never from our server
    const old = state.clients.get(record.name);
    if (old) count(old, -1);
    if (!old || old.status !== record.status) {
      if (old) removeName(state.sorted[old.status], record.name);
      insertName(state.sorted[record.status], record.name);
    }
    record.key = searchKey(record);
    state.clients.set(record.name, record);
    count(record, +1);
  }

  function drop(name) {
    const old = state.clients.get(name);
    if (!old) return;
    count(old, -1);
    state.clients.delete(name);
    removeName(state.sorted[old.status], name);
  }

  function rebuild(records) {
    state.clients = new Map();
    state.counts = { online: 0, reconnecting: 0, offline: 0, guests: 0 };
    for (const record of records) {
      if (!STATUSES.includes(record.status)) record.status = "offline";
      record.key = searchKey(record);
      state.clients.set(record.name, record);
    }
    state.sorted = { online: [], reconnecting: [], offline: [] };
    for (const record of state.clients.values()) {
      count(record, +1);
      state.sorted[record.status].push(record.name);
    }
    for (const status of STATUSES) state.sorted[status].sort(compare);
  }

  // A change from /events: `client_status_changed` or `client_removed`.
  function apply(event, data) {
    const name = data && data.name;
    if (typeof name !== "string") return;
    if (event === "client_removed") {
      drop(name);
    } else {
      const old = state.clients.get(name);
      if (old && typeof data.version === "number" && data.version <= old.version) return;
      const status = STATUSES.includes(data.status) ? data.status : "offline";
      put({
        name,
        status,
        reason: data.reason,
        since: data.since,
        last_seen: data.lastHeartbeat,
        last_contact: old ? old.last_contact : null,
        ip: old ? old.ip : undefined,
        guest: Boolean(data.guest),
        display_name: old ? old.display_name : data.guest ? undefined : null,
        node: data.node,
        // the event does not carry the socket count: online means at least one
        connections: status === "online" ? Math.max(1, (old && old.connections) || 0) : 0,
        version: data.version,
      });
    }
    if (name === state.selected) refreshTimelineSoon();
  }

  async function load() {
    const generation = (state.loading = state.loading + 1);
    state.loaded = false;
    const records = [];
    let after = "";
    try {
      for (;;) {
        const url = "/api/clients?limit=" + LOAD_LIMIT + (after ? "&after=" + encodeURIComponent(after) : "");
        const body = await getJSON(url);
        if (generation !== state.loading) return; // a newer load replaced this one
        for (const record of body.clients) records.push(record);
        if (!body.next) break;
        after = body.next;
      }
    } catch (error) {
      if (generation === state.loading) setTimeout(load, RETRY_MS);
      return;
    }
    rebuild(records);
    const pending = state.pending;
    state.pending = [];
    for (const [event, data] of pending) apply(event, data);
    state.loaded = true;
    state.loading = 0;
    const more = $("more");
    if (more) more.hidden = true;
    sample();
    schedule();
  }

  // --- the stream ----------------------------------------------------------------------------
  function received(message) {
    if (message.lastEventId) state.lastEventId = message.lastEventId;
    let data;
    try {
      data = JSON.parse(message.data);
    } catch (error) {
      return;
    }
    if (!state.loaded) {
      state.pending.push([message.type, data]);
      return;
    }
    apply(message.type, data);
    schedule();
  }

  function resynced(message) {
    if (message.lastEventId) state.lastEventId = message.lastEventId;
    let snapshot;
    try {
      snapshot = JSON.parse(message.data);
    } catch (error) {
      return;
    }
    if (snapshot && Array.isArray(snapshot.clients) && !snapshot.truncated) {
      state.loading += 1; // a load in progress is superseded
      state.pending = [];
      rebuild(snapshot.clients);
      state.loaded = true;
      state.loading = 0;
      schedule();
    } else {
      state.pending = [];
      load(); // too many for one snapshot: every record again (changes wait meanwhile)
    }
  }

  function live(text, on) {
    const badge = $("live");
    setText(badge, text);
    badge.classList.toggle("on", on === true);
    badge.classList.toggle("off", on === false);
  }

  function connect() {
    const url = "/events" + (state.lastEventId !== "" ? "?lastEventId=" + encodeURIComponent(state.lastEventId) : "");
    const source = new EventSource(url);
    state.source = source;
    source.addEventListener("client_status_changed", received);
    source.addEventListener("client_removed", received);
    source.addEventListener("resync", resynced);
    source.addEventListener("open", () => live("live", true));
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        // the server refused the stream (e.g. 503 while it shuts down): EventSource gives up,
        // so open a new one from the last id received
        live("disconnected, retrying", false);
        if (state.source === source) setTimeout(connect, RETRY_MS);
      } else {
        live("reconnecting…", false);
      }
    });
  }

  // --- rendering -----------------------------------------------------------------------------
  // At most one render per RENDER_MS, in an animation frame: a burst of changes costs one
  // layout and paint, not one per change (and not one per frame: 60 table layouts a second
  // would keep the main thread busy for no reader's benefit).
  function schedule() {
    if (state.frame) return;
    const wait = state.renderedAt + RENDER_MS - performance.now();
    if (wait <= 0) {
      state.frame = requestAnimationFrame(render);
    } else {
      state.frame = setTimeout(() => {
        state.frame = requestAnimationFrame(render);
      }, wait);
    }
  }

  // How many records match (per status), and the first `need` matching records of each
  // status; the page shows online, then reconnecting, then offline clients, each by name.
  // Without a search it only slices the sorted names of each status; a search reads the
  // names of the statuses shown once. No list of all matches is built.
  function matching(need) {
    const wanted = state.filter.status;
    const q = state.filter.q;
    const totals = { online: 0, reconnecting: 0, offline: 0 };
    const firsts = { online: [], reconnecting: [], offline: [] };
    const clients = state.clients;
    for (const status of STATUSES) {
      if (wanted && status !== wanted) continue;
      const names = state.sorted[status];
      if (!q) {
        totals[status] = names.length;
        firsts[status] = names.slice(0, need).map((name) => clients.get(name));
        continue;
      }
      const first = firsts[status];
      let total = 0;
      for (const name of names) {
        const record = clients.get(name);
        if (!record.key.includes(q)) continue;
        if (total++ < need) first.push(record);
      }
      totals[status] = total;
    }
    return { totals, firsts, total: totals.online + totals.reconnecting + totals.offline };
  }

  function slice(found, start, size) {
    const shown = [];
    let offset = 0;
    for (const status of STATUSES) {
      const from = Math.max(0, start - offset);
      const to = Math.min(found.totals[status], start + size - offset);
      for (let index = from; index < to; index += 1) shown.push(found.firsts[status][index]);
      offset += found.totals[status];
    }
    return shown;
  }

  function makeRow() {
    const tr = document.createElement("tr");
    const cells = [];
    for (let index = 0; index < 8; index += 1) {
      const td = document.createElement("td");
      tr.appendChild(td);
      cells.push(td);
    }
    const link = document.createElement("a");
    const small = document.createElement("small");
    cells[0].append(link, " ", small);
    const since = document.createElement("time");
    const seen = document.createElement("time");
    cells[3].appendChild(since);
    cells[4].appendChild(seen);
    tr.parts = { cells, link, small, since, seen, name: null };
    return tr;
  }

  function fillRow(tr, record, now) {
    const parts = tr.parts;
    const cells = parts.cells;
    if (parts.name !== record.name) {
      parts.name = record.name;
      tr.dataset.name = record.name;
      parts.link.href = clientURL(record.name);
    }
    const className = record.name === state.selected ? record.status + " selected" : record.status;
    if (parts.className !== className) {
      parts.className = className;
      tr.className = className;
    }
    if (record.guest) {
      setText(parts.link, record.display_name || record.name);
      setText(parts.small, record.display_name ? "(guest: " + record.name + ")" : "(guest)");
      if (record.display_name === undefined) fetchDetails(record.name);
    } else {
      setText(parts.link, record.name);
      setText(parts.small, "");
    }
    setText(cells[1], record.status);
    if (parts.statusClass !== record.status) {
      parts.statusClass = record.status;
      cells[1].className = record.status;
    }
    setText(cells[2], record.reason || "");
    setTime(parts.since, record.since, now);
    setTime(parts.seen, record.last_seen, now);
    setText(cells[5], String(record.connections ?? ""));
    setText(cells[6], record.ip || "—");
    setText(cells[7], record.node || "");
  }

  function render() {
    state.frame = 0;
    state.renderedAt = performance.now();
    const counts = state.loaded ? state.counts : null;
    if (counts) {
      setText($("count-total").firstChild, String(state.clients.size));
      for (const status of STATUSES) setText($("count-" + status).firstChild, String(counts[status]));
      setText($("count-guests").firstChild, String(counts.guests));
      document.title = "Presence — " + counts.online + " online";
    }
    if (state.responsive !== null) setText($("count-responsive").firstChild, String(state.responsive));
    const up = Number($("uptime").dataset.seconds) + (performance.now() - state.startedAt) / 1000;
    setText($("uptime"), ago(new Date(Date.now() - up * 1000).toISOString(), Date.now())
      .replace(" ago", "").replace("just now", Math.floor(up) + " s"));
    if (!state.loaded) return;
    const found = matching((state.page + 1) * PAGE_SIZE);
    const matches = found.total;
    const pages = Math.max(1, Math.ceil(matches / PAGE_SIZE));
    if (state.page >= pages) state.page = pages - 1;
    const start = state.page * PAGE_SIZE;
    const shown = slice(found, start, PAGE_SIZE);
    state.segments = segments(found, shown);
    const now = Date.now();
    const body = $("rows");
    if (!state.rows.length) {
      body.textContent = ""; // the server-rendered rows give way to the live ones
      for (let index = 0; index < PAGE_SIZE; index += 1) {
        const tr = makeRow();
        state.rows.push(tr);
        body.appendChild(tr);
      }
      const empty = document.createElement("tr");
      empty.className = "empty";
      const cell = document.createElement("td");
      cell.colSpan = 8;
      empty.appendChild(cell);
      body.appendChild(empty);
      state.emptyRow = empty;
    }
    state.rows.forEach((tr, index) => {
      const record = shown[index];
      if (record) {
        fillRow(tr, record, now);
        if (tr.parts.hidden !== false) tr.hidden = tr.parts.hidden = false;
      } else if (tr.parts.hidden !== true) {
        tr.hidden = tr.parts.hidden = true;
      }
    });
    const filtering = state.filter.status || state.filter.q;
    state.emptyRow.hidden = matches > 0;
    setText(state.emptyRow.firstChild, filtering ? "No clients match." : "No clients yet.");
    const total = state.clients.size;
    setText($("shown"), matches === total ? total + " clients"
      : matches + " of " + total + " clients match");
    $("pager").hidden = pages <= 1;
    setText($("page-info"), matches
      ? (start + 1) + "–" + (start + shown.length) + " of " + matches : "");
    $("page-prev").disabled = state.page === 0;
    $("page-next").disabled = state.page >= pages - 1;
  }

  // The rows shown, per status: the name before the first (the `after` of /api/clients) and
  // how many, so that refreshRows can re-read exactly them with at most three requests.
  function segments(found, shown) {
    const result = [];
    for (const record of shown) {
      const last = result[result.length - 1];
      if (last && last.status === record.status) {
        last.count += 1;
        continue;
      }
      const list = found.firsts[record.status];
      const index = list.indexOf(record);
      result.push({ status: record.status, after: index > 0 ? list[index - 1].name : "", count: 1 });
    }
    return result;
  }

  // Heartbeats change no status, so no event carries them: the rows shown are re-read every
  // ROWS_MS (their last heartbeat, socket count, address, a guest's display name).
  async function refreshRows() {
    if (!state.loaded || document.hidden) return;
    const q = $("search").value.trim();
    for (const segment of state.segments.slice()) {
      const params = new URLSearchParams({ status: segment.status, limit: String(segment.count) });
      if (segment.after) params.set("after", segment.after);
      if (q) params.set("q", q);
      try {
        const body = await getJSON("/api/clients?" + params.toString());
        for (const fresh of body.clients) {
          const record = state.clients.get(fresh.name);
          if (record && fresh.version >= record.version) put(fresh);
        }
      } catch (error) {
        return; // the next refresh tries again
      }
    }
    schedule();
  }

  // A guest's display name (and the socket count, the address) are not in the events: fetch
  // the record of a guest row on the page once.
  async function fetchDetails(name) {
    if (state.details.has(name)) return;
    state.details.add(name);
    try {
      const body = await getJSON(clientURL(name));
      const record = state.clients.get(name);
      if (record && body.version >= record.version) {
        delete body.transitions;
        put(body);
        schedule();
      } else if (record && record.display_name === undefined) {
        record.display_name = body.display_name;
        record.key = searchKey(record);
        schedule();
      }
    } catch (error) {
      const record = state.clients.get(name);
      if (record && record.display_name === undefined) record.display_name = null;
    } finally {
      state.details.delete(name);
    }
  }

  // --- the timeline --------------------------------------------------------------------------
  // Flaps: transitions in the shown history from online to reconnecting or offline.
  function flaps(transitions) {
    return transitions.filter((t) => t.previous === "online"
      && (t.status === "reconnecting" || t.status === "offline")).length;
  }

  function refreshTimelineSoon() {
    clearTimeout(state.timelineTimer);
    state.timelineTimer = setTimeout(() => {
      if (state.selected !== null) openTimeline(state.selected);
    }, 300);
  }

  function closeTimeline() {
    state.selected = null;
    $("timeline").hidden = true;
    schedule();
  }

  async function openTimeline(name) {
    state.selected = name;
    const panel = $("timeline");
    panel.hidden = false;
    panel.dataset.name = name;
    schedule();
    let body;
    try {
      body = await getJSON(clientURL(name));
    } catch (error) {
      if (state.selected !== name) return;
      setText($("timeline-title"), name);
      setText($("timeline-summary"), error.status === 404 ? "no such client (removed)" : "could not load: " + error.message);
      setText($("timeline-flaps"), "");
      $("timeline-list").textContent = "";
      return;
    }
    if (state.selected !== name) return;
    const record = state.clients.get(name);
    const transitions = Array.isArray(body.transitions) ? body.transitions : [];
    if (record && body.version >= record.version) {
      const copy = Object.assign({}, body);
      delete copy.transitions;
      put(copy);
    }
    const now = Date.now();
    setText($("timeline-title"), body.guest && body.display_name
      ? body.display_name + " (guest: " + body.name + ")" : body.name);
    const parts = [body.status + " (" + body.reason + ") since " + ago(body.since, now),
      "connections " + body.connections, "node " + body.node];
    if (body.ip) parts.push("ip " + body.ip);
    if (body.last_seen) parts.push("last heartbeat " + ago(body.last_seen, now));
    setText($("timeline-summary"), parts.join(" · "));
    const count = flaps(transitions);
    setText($("timeline-flaps"), count + (count === 1 ? " flap" : " flaps") + " in the last "
      + transitions.length + " transitions");
    $("timeline-flaps").dataset.flaps = String(count);
    const list = $("timeline-list");
    const items = [];
    for (let index = transitions.length - 1; index >= 0; index -= 1) {
      const t = transitions[index];
      const item = document.createElement("li");
      item.className = STATUSES.includes(t.status) ? t.status : "";
      const what = document.createElement("span");
      what.textContent = (t.previous ? t.previous + " → " : "") + t.status + " (" + t.reason + ")";
      const when = document.createElement("time");
      when.className = "when";
      setTime(when, t.at, now);
      item.append(what, " ", when);
      items.push(item);
    }
    list.replaceChildren(...items);
    schedule();
  }

  // --- counts over time, stats, nodes --------------------------------------------------------
  function sample() {
    if (!state.loaded) return;
    const now = Date.now();
    state.samples.push({ t: now, online: state.counts.online, reconnecting: state.counts.reconnecting });
    while (state.samples.length && state.samples[0].t < now - WINDOW_MS) state.samples.shift();
    drawSparkline(now);
  }

  function drawSparkline(now) {
    const svg = $("sparkline");
    const samples = state.samples;
    $("trend").hidden = false;
    let top = 1;
    for (const s of samples) top = Math.max(top, s.online, s.reconnecting);
    const line = (key) => samples.map((s) => {
      const x = (360 * (s.t - (now - WINDOW_MS))) / WINDOW_MS;
      const y = 58 - (56 * s[key]) / top;
      return x.toFixed(1) + "," + y.toFixed(1);
    }).join(" ");
    if (!svg.lines) {
      svg.lines = {};
      for (const key of ["online", "reconnecting"]) {
        const polyline = document.createElementNS(SVG, "polyline");
        polyline.setAttribute("class", key);
        svg.appendChild(polyline);
        svg.lines[key] = polyline;
      }
    }
    for (const key of ["online", "reconnecting"]) {
      // one sample draws as a short flat stroke up to "now"
      const points = samples.length === 1 ? line(key) + " 360," + line(key).split(",")[1] : line(key);
      svg.lines[key].setAttribute("points", points);
    }
    svg.dataset.samples = String(samples.length);
  }

  async function pollStats() {
    try {
      const stats = await getJSON("/api/stats");
      state.responsive = stats.responsive;
      schedule();
    } catch (error) {
      // the next poll tries again
    }
  }

  async function pollNodes() {
    let body;
    try {
      body = await getJSON("/api/nodes");
    } catch (error) {
      $("nodes").hidden = true;
      if (error.status === 404) return; // no several-node store: stop asking
      setTimeout(pollNodes, NODES_MS);
      return;
    }
    const nodes = Array.isArray(body.nodes) ? body.nodes : [];
    $("nodes").hidden = nodes.length < 2;
    const rows = nodes.map((n) => {
      const tr = document.createElement("tr");
      const values = [n.node, n.alive ? "yes" : "no", n.connections, n.started, n.lease_age];
      for (const value of values) {
        const td = document.createElement("td");
        td.textContent = value === undefined || value === null ? "—" : String(value);
        tr.appendChild(td);
      }
      tr.className = n.alive ? "online" : "offline";
      return tr;
    });
    $("node-rows").replaceChildren(...rows);
    setTimeout(pollNodes, NODES_MS);
  }

  // --- controls ------------------------------------------------------------------------------
  function readFilters() {
    const status = $("status-filter").value;
    state.filter.status = STATUSES.includes(status) ? status : "";
    state.filter.q = $("search").value.trim().toLowerCase();
    state.page = 0;
    const params = new URLSearchParams();
    if (state.filter.status) params.set("status", state.filter.status);
    if ($("search").value.trim()) params.set("q", $("search").value.trim());
    const query = params.toString();
    history.replaceState(null, "", query ? "?" + query : location.pathname);
    schedule();
  }

  function wire() {
    $("filter-submit").hidden = true;
    $("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      readFilters();
    });
    $("status-filter").addEventListener("change", readFilters);
    $("search").addEventListener("input", readFilters);
    $("page-prev").addEventListener("click", () => {
      state.page = Math.max(0, state.page - 1);
      schedule();
    });
    $("page-next").addEventListener("click", () => {
      state.page += 1;
      schedule();
    });
    $("timeline-close").addEventListener("click", closeTimeline);
    $("rows").addEventListener("click", (event) => {
      if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
      const tr = event.target.closest("tr");
      if (!tr || !tr.dataset.name) return;
      event.preventDefault();
      openTimeline(tr.dataset.name);
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && state.selected !== null) closeTimeline();
    });
    setText($("mode"), "live from /events");
  }

  function start() {
    wire();
    const status = $("status-filter").value;
    state.filter.status = STATUSES.includes(status) ? status : "";
    state.filter.q = $("search").value.trim().toLowerCase();
    connect();
    load();
    pollStats();
    pollNodes();
    setInterval(pollStats, STATS_MS);
    setInterval(sample, SAMPLE_MS);
    setInterval(schedule, CLOCK_MS); // relative times
    setInterval(refreshRows, ROWS_MS);
  }

  start();
})();
