// Loaded with `node --import` before the Portkey gateway's start-server.js (harness/gateways/portkey.py).
// Portkey passes no host to its HTTP server, so it would listen on every interface; this binds it to
// CHAOSGATE_BIND_ADDRESS only (127.0.0.1 on the local runtime). Nothing else of Portkey is touched.
import net from "node:net";

const host = process.env.CHAOSGATE_BIND_ADDRESS;
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (host) {
    if (typeof args[0] === "number" || typeof args[0] === "string" && /^\d+$/.test(args[0])) {
      if (args.length > 1 && (args[1] === undefined || typeof args[1] === "string")) {
        args[1] = host;
      } else {
        args.splice(1, 0, host);
      }
    } else if (args[0] && typeof args[0] === "object" && "port" in args[0]) {
      args[0] = { ...args[0], host };
    }
  }
  return listen.apply(this, args);
};
