// Bare Socket.IO 4 server for the presence benchmark: the ceiling a heartbeat can reach.
// Acks `heartbeat` at once with the presence server's reply shape (CONTRACT §4); no presence state.
// Usage: node server.js --port PORT [--host 127.0.0.1] [--ping-interval MS] [--ping-timeout MS]
//        [--heartbeat-interval MS] [--max-http-buffer-size BYTES] [--backlog N]
"use strict";

const http = require("http");
const { Server } = require("socket.io");

function parseArgs(argv) {
  const opts = {
    host: "127.0.0.1",
    port: 0,
    pingInterval: 30000,
    pingTimeout: 120000,
    heartbeatInterval: 30000,
    maxHttpBufferSize: 1000000,
    backlog: 4096,
  };
  const names = {
    "--host": "host",
    "--port": "port",
    "--ping-interval": "pingInterval",
    "--ping-timeout": "pingTimeout",
    "--heartbeat-interval": "heartbeatInterval",
    "--max-http-buffer-size": "maxHttpBufferSize",
    "--backlog": "backlog",
  };
  for (let i = 2; i < argv.length; i += 2) {
    const key = names[argv[i]];
    if (!key || i + 1 >= argv.length) {
      throw new Error(`unknown or incomplete option: ${argv[i]}`);
    }
    opts[key] = key === "host" ? argv[i + 1] : Number(argv[i + 1]);
  }
  return opts;
}

function main() {
  const opts = parseArgs(process.argv);
  const httpServer = http.createServer((req, res) => {
    if (req.url === "/health") {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ status: "ok", uptime: process.uptime(), node: "bare-node" }));
      return;
    }
    res.writeHead(404);
    res.end();
  });
  const io = new Server(httpServer, {
    pingInterval: opts.pingInterval,
    pingTimeout: opts.pingTimeout,
    maxHttpBufferSize: opts.maxHttpBufferSize,
    cors: { origin: "*" },
    serveClient: false,
  });
  io.on("connection", (socket) => {
    const auth = socket.handshake.auth || {};
    socket.data.clientName = typeof auth.clientName === "string" ? auth.clientName : null;
    socket.on("heartbeat", (data, ack) => {
      const reply = {
        status: "ok",
        timestamp: new Date().toISOString(),
        message: "Heartbeat received",
        nextHeartbeatIn: opts.heartbeatInterval,
      };
      if (typeof ack === "function") {
        ack(reply);
      } else {
        socket.emit("heartbeat_response", reply);
      }
    });
  });
  httpServer.listen({ port: opts.port, host: opts.host, backlog: opts.backlog }, () => {
    console.log(`bare-node listening on ${opts.host}:${httpServer.address().port}`);
  });
  const stop = () => {
    io.close();
    httpServer.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main();
