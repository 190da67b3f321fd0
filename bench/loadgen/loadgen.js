// Load generator worker for the presence benchmark: many socket.io-client sockets in one process.
//
// Driven by JSON lines on stdin; answers and periodic reports as JSON lines on stdout. Latencies go
// into a log-bucketed histogram (bucket i covers [BASE^i, BASE^(i+1)) microseconds, BASE = 1.01)
// that the Python side merges (bench/hist.py uses the same BASE).
//
// Commands ({"cmd": ..., ...}):
//   init     {url, names, localAddress, ackTimeoutMs, reconnection, reconnectionDelay,
//             reconnectionDelayMax, connectRate, connectConcurrency, reportMs}
//   connect  {}                  open every socket, `connectRate` per second → ev "ramp_done"
//   start    {heartbeatMs}       heartbeat every heartbeatMs (open loop, random phase) per client
//   stop     {}                  stop heartbeating
//   drop     {names}             clean close → ev "dropped" {times: {name: {t, last}}}
//   silence  {names}             no more heartbeats nor engine.io pongs → ev "silenced" {last}
//   mark     {}                  from now on, ev "confirmed_all" once every live client has an ack
//                                for a heartbeat sent on a connection opened after the mark
//   watch    {}                  open a watcher socket; ev "status" per client_status_changed
//   quit     {}                  close everything and exit
"use strict";

const readline = require("readline");
const { performance } = require("perf_hooks");
const { io } = require("socket.io-client");

const BASE = 1.01;
const LOG_BASE = Math.log(BASE);

function nowMs() {
  return performance.timeOrigin + performance.now();
}

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

class Histogram {
  constructor() {
    this.counts = new Map();
  }
  add(us) {
    const idx = Math.floor(Math.log(Math.max(us, 1)) / LOG_BASE);
    this.counts.set(idx, (this.counts.get(idx) || 0) + 1);
  }
  take() {
    const obj = Object.fromEntries(this.counts);
    this.counts = new Map();
    return obj;
  }
}

const state = {
  cfg: null,
  clients: new Map(), // name -> client record
  heartbeatMs: 0,
  running: false,
  hist: new Histogram(),
  lagHist: new Histogram(),
  pending: new Set(), // heartbeats awaiting their ack, oldest first
  counters: null,
  markAt: null,
  markDone: true,
  watcher: null,
  reportTimer: null,
  lastCpu: process.cpuUsage(),
};

function zeroCounters() {
  return {
    sent: 0, acked: 0, errors: 0, timeouts: 0, connects: 0, disconnects: 0, connectErrors: 0,
    serverErrors: 0,
  };
}

function newClient(name) {
  return {
    name, socket: null, timer: null, nextDue: 0, connected: false, silenced: false,
    dropped: false, tracked: false, lastHbSent: null, connectedAt: 0, confirmed: false,
  };
}

function liveClients() {
  let n = 0;
  for (const c of state.clients.values()) {
    if (!c.dropped && !c.silenced) n += 1;
  }
  return n;
}

function connectedCount() {
  let n = 0;
  for (const c of state.clients.values()) {
    if (c.connected) n += 1;
  }
  return n;
}

function checkConfirmed() {
  if (state.markDone || state.markAt === null) return;
  for (const c of state.clients.values()) {
    if (!c.dropped && !c.silenced && !c.confirmed) return;
  }
  state.markDone = true;
  out({ ev: "confirmed_all", t: nowMs(), mark: state.markAt });
}

function sendHeartbeat(c) {
  if (!c.connected || c.silenced || c.dropped) return;
  const sock = c.socket;
  const sentAt = performance.now();
  const sentWall = nowMs();
  c.lastHbSent = sentWall;
  state.counters.sent += 1;
  const afterMark = state.markAt !== null && c.connectedAt >= state.markAt;
  // Ack timeouts are swept once a second (sweepPending) rather than one timer per emit.
  const entry = { sentAt, done: false };
  state.pending.add(entry);
  sock.emit(
    "heartbeat",
    { clientName: c.name, timestamp: new Date(sentWall).toISOString() },
    (reply) => {
      if (entry.done) return; // already counted as a timeout
      entry.done = true;
      state.pending.delete(entry);
      state.hist.add((performance.now() - sentAt) * 1000);
      if (!reply || reply.status !== "ok") {
        state.counters.errors += 1;
        return;
      }
      state.counters.acked += 1;
      if (afterMark && !c.confirmed) {
        c.confirmed = true;
        checkConfirmed();
      }
    },
  );
}

function sweepPending() {
  const limit = performance.now() - state.cfg.ackTimeoutMs;
  for (const entry of state.pending) {
    if (entry.sentAt > limit) break; // a Set iterates in insertion (= send) order
    entry.done = true;
    state.pending.delete(entry);
    state.counters.timeouts += 1;
  }
}

function schedule(c) {
  if (!state.running || c.silenced || c.dropped) return;
  const delay = Math.max(0, c.nextDue - nowMs());
  c.timer = setTimeout(() => {
    c.timer = null;
    const lag = nowMs() - c.nextDue;
    state.lagHist.add(Math.max(lag, 0) * 1000);
    sendHeartbeat(c);
    c.nextDue += state.heartbeatMs;
    // A loadgen that fell far behind skips missed slots rather than bursting.
    if (c.nextDue < nowMs() - state.heartbeatMs) c.nextDue = nowMs() + state.heartbeatMs;
    schedule(c);
  }, delay);
}

function startClient(c) {
  // First heartbeat at a random phase so the load is smooth, not synchronised.
  c.nextDue = nowMs() + Math.random() * state.heartbeatMs;
  schedule(c);
}

function startHeartbeats(heartbeatMs) {
  stopHeartbeats();
  state.heartbeatMs = heartbeatMs;
  state.running = true;
  for (const c of state.clients.values()) {
    if (c.socket) startClient(c);
  }
}

function stopHeartbeats() {
  state.running = false;
  for (const c of state.clients.values()) {
    if (c.timer) clearTimeout(c.timer);
    c.timer = null;
  }
}

function openSocket(c, onSettled) {
  const cfg = state.cfg;
  const sock = io(cfg.url, {
    transports: ["websocket"],
    auth: { clientName: c.name },
    forceNew: true,
    multiplex: false,
    reconnection: cfg.reconnection,
    reconnectionDelay: cfg.reconnectionDelay,
    reconnectionDelayMax: cfg.reconnectionDelayMax,
    timeout: 20000,
    localAddress: cfg.localAddress,
  });
  c.socket = sock;
  let settled = false;
  const settle = (ok) => {
    if (!settled) {
      settled = true;
      onSettled(ok);
    }
  };
  sock.on("connect", () => {
    const first = c.connectedAt === 0;
    c.connected = true;
    c.connectedAt = nowMs();
    c.confirmed = false;
    state.counters.connects += 1;
    settle(true);
    if (!state.running) return;
    if (first) startClient(c);
    else sendHeartbeat(c); // a reconnecting client says hello at once, as the SDK does
  });
  sock.on("connect_error", () => {
    state.counters.connectErrors += 1;
    settle(false);
  });
  sock.on("disconnect", (reason) => {
    c.connected = false;
    state.counters.disconnects += 1;
    if (c.tracked) out({ ev: "closed", name: c.name, t: nowMs(), reason });
    // socket.io-client never retries after a server-side disconnect; a presence client does.
    if (reason === "io server disconnect" && cfg.reconnection && !c.dropped && !c.silenced) {
      const wait = cfg.reconnectionDelay * (0.5 + Math.random());
      setTimeout(() => { if (!c.dropped && !c.silenced) sock.connect(); }, wait);
    }
  });
  sock.on("connection_check", (data, ack) => {
    // A live presence client answers the server's sweep; a silenced one does not.
    if (c.silenced || typeof ack !== "function") return;
    ack({ client_name: c.name, timestamp: new Date().toISOString() });
  });
  sock.on("error", () => {
    state.counters.serverErrors += 1;
  });
}

function connectAll() {
  const cfg = state.cfg;
  const pending = [...state.clients.values()];
  const interval = 1000 / Math.max(cfg.connectRate, 1);
  let inFlight = 0;
  let ok = 0;
  let failed = 0;
  let next = 0;
  const t0 = nowMs();
  const finish = () => {
    if (ok + failed === pending.length) {
      out({ ev: "ramp_done", t: nowMs(), connected: ok, failed, seconds: (nowMs() - t0) / 1000 });
    }
  };
  const tick = () => {
    // Open the sockets due by now, bounded by the concurrency limit.
    const due = Math.min(pending.length, Math.floor((nowMs() - t0) / interval) + 1);
    while (next < due && inFlight < cfg.connectConcurrency) {
      const c = pending[next];
      next += 1;
      inFlight += 1;
      openSocket(c, (good) => {
        inFlight -= 1;
        if (good) ok += 1;
        else failed += 1;
        finish();
      });
    }
    if (next < pending.length) setTimeout(tick, Math.max(1, Math.min(interval, 20)));
  };
  if (pending.length === 0) finish();
  else tick();
}

function dropClients(names) {
  const times = {};
  for (const name of names) {
    const c = state.clients.get(name);
    if (!c || !c.socket) continue;
    c.tracked = true;
    c.dropped = true;
    if (c.timer) clearTimeout(c.timer);
    c.timer = null;
    c.socket.io.opts.reconnection = false;
    c.socket.io.reconnection(false);
    times[name] = { t: nowMs(), last: c.lastHbSent };
    c.socket.disconnect();
  }
  out({ ev: "dropped", times });
}

function silenceClients(names) {
  const last = {};
  for (const name of names) {
    const c = state.clients.get(name);
    if (!c || !c.socket) continue;
    c.tracked = true;
    c.silenced = true;
    if (c.timer) clearTimeout(c.timer);
    c.timer = null;
    c.socket.io.reconnection(false);
    const engine = c.socket.io.engine;
    if (engine && typeof engine._sendPacket === "function") {
      const orig = engine._sendPacket.bind(engine);
      engine._sendPacket = (type, ...rest) => (type === "pong" ? undefined : orig(type, ...rest));
    }
    last[name] = c.lastHbSent;
  }
  out({ ev: "silenced", t: nowMs(), last });
}

function startWatcher() {
  const cfg = state.cfg;
  const sock = io(cfg.url, {
    transports: ["websocket"],
    forceNew: true,
    multiplex: false,
    reconnection: true,
    reconnectionDelay: 200,
    reconnectionDelayMax: 1000,
    localAddress: cfg.localAddress,
  });
  state.watcher = sock;
  sock.on("connect", () => {
    sock.timeout(10000).emit("watch", {}, (err, snap) => {
      if (err) {
        out({ ev: "watch_error", t: nowMs(), error: String(err) });
        return;
      }
      const clients = (snap && Array.isArray(snap.clients)) ? snap.clients : [];
      const byStatus = {};
      for (const rec of clients) byStatus[rec.status] = (byStatus[rec.status] || 0) + 1;
      const offline = clients.filter((r) => r.status === "offline").map((r) => r.name);
      out({ ev: "watching", t: nowMs(), total: clients.length, byStatus, offline });
    });
  });
  sock.on("connect_error", (err) => out({ ev: "watch_error", t: nowMs(), error: err.message }));
  sock.on("disconnect", (reason) => {
    out({ ev: "watch_disconnect", t: nowMs(), reason });
    // socket.io-client never retries after a server-side disconnect (e.g. a graceful restart).
    if (reason === "io server disconnect") setTimeout(() => sock.connect(), 200);
  });
  sock.on("client_status_changed", (data) => out({ ev: "status", t: nowMs(), data }));
}

function report() {
  sweepPending();
  const cpu = process.cpuUsage(state.lastCpu);
  state.lastCpu = process.cpuUsage();
  out({
    ev: "report",
    t: nowMs(),
    hist: state.hist.take(),
    lag: state.lagHist.take(),
    connected: connectedCount(),
    inflight: state.pending.size,
    live: liveClients(),
    cpuMs: (cpu.user + cpu.system) / 1000,
    ...state.counters,
  });
  state.counters = zeroCounters();
}

function quit() {
  stopHeartbeats();
  if (state.reportTimer) clearInterval(state.reportTimer);
  for (const c of state.clients.values()) {
    if (c.socket) c.socket.disconnect();
  }
  if (state.watcher) state.watcher.disconnect();
  out({ ev: "bye", t: nowMs() });
  setTimeout(() => process.exit(0), 200);
}

function handle(msg) {
  switch (msg.cmd) {
    case "init":
      state.cfg = {
        ackTimeoutMs: 10000, reconnection: false, reconnectionDelay: 1000,
        reconnectionDelayMax: 5000, connectRate: 200, connectConcurrency: 64, reportMs: 1000,
        localAddress: undefined, names: [], ...msg,
      };
      state.counters = zeroCounters();
      for (const name of state.cfg.names) state.clients.set(name, newClient(name));
      state.reportTimer = setInterval(report, state.cfg.reportMs);
      out({ ev: "ready", t: nowMs(), clients: state.clients.size, pid: process.pid });
      break;
    case "connect": connectAll(); break;
    case "start": startHeartbeats(msg.heartbeatMs); out({ ev: "started", t: nowMs() }); break;
    case "stop": stopHeartbeats(); out({ ev: "stopped", t: nowMs() }); break;
    case "drop": dropClients(msg.names || []); break;
    case "silence": silenceClients(msg.names || []); break;
    case "mark":
      state.markAt = nowMs();
      state.markDone = false;
      out({ ev: "marked", t: state.markAt });
      break;
    case "watch": startWatcher(); break;
    case "quit": quit(); break;
    default: out({ ev: "error", message: `unknown command ${msg.cmd}` });
  }
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (!line.trim()) return;
  try {
    handle(JSON.parse(line));
  } catch (err) {
    out({ ev: "error", message: String(err && err.stack ? err.stack : err) });
  }
});
rl.on("close", () => quit());
