// default-client.js — the official socket.io-client with its DEFAULT settings, for the tests that
// clients come back by themselves: no server_shutdown handler, no reconnection options.
// Env: PRESENCE_URL, PRESENCE_NAME, HEARTBEAT_MS (0: never heartbeat), HEARTBEAT_FROM (heartbeat
// from the Nth connection on; default 1), TRANSPORTS (optional, comma-separated; default:
// socket.io-client's own, long-polling upgraded to websocket).
// Prints one JSON line per connect/disconnect.
const { io } = require("socket.io-client");

const NAME = process.env.PRESENCE_NAME;
const EVERY = Number(process.env.HEARTBEAT_MS || "0");
const FROM = Number(process.env.HEARTBEAT_FROM || "1");
let connects = 0;
const options = { auth: { clientName: NAME } };
if (process.env.TRANSPORTS) options.transports = process.env.TRANSPORTS.split(",");

const socket = io(process.env.PRESENCE_URL, options);
const say = (event, fields) => console.log(JSON.stringify({ event, ...fields }));

socket.on("connect", () => { connects += 1; say("connect", { sid: socket.id }); });
socket.on("disconnect", (reason) => say("disconnect", { reason }));
if (EVERY > 0) {
  setInterval(() => {
    if (socket.connected && connects >= FROM) {
      socket.emit("heartbeat", { clientName: NAME, timestamp: new Date().toISOString() });
    }
  }, EVERY);
}
process.on("SIGTERM", () => { socket.disconnect(); process.exit(0); });
