// Loaded with `node --import` before the Portkey gateway's start-server.js (harness/gateways/portkey.py), after
// portkey_bind.mjs. It hands Portkey fetched responses whose headers it may edit, as Portkey's code expects.
//
// Why (docs/gateways.md, Portkey, "Streams"). The headers of a Response that fetch() resolves with are immutable
// (the Fetch standard's "immutable" guard: Node's undici throws `TypeError: immutable` on append, set and delete).
// Portkey 1.15.2 rebuilds a streamed answer as `new Response(stream, fetchedResponse)` (src/handlers/streamHandler.ts)
// and then appends its x-portkey-* headers to it (updateHeaders, src/handlers/services/responseService.ts). By the
// standard that is fine: the Response constructor copies init.headers into headers of its own. But the global
// Response at that point is @hono/node-server's "lightweight" one (serve() installs it), and from 1.14.2 on
// (honojs/node-server#242) its constructor keeps init.headers by reference when the body is a stream or a string:
// the rebuilt answer shares the fetched answer's immutable Headers, and updateHeaders throws (Portkey answers 500
// "Something went wrong"). Portkey declares "^1.3.3", so npm installs 1.19.x; its own lockfile holds 1.13.5, which
// copies. A non-streamed answer escapes by accident: Portkey's afterRequestHookHandler rebuilds it once more and
// reads statusText before headers, which makes the lightweight Response build a real one, with copied headers.
// honojs/node-server#382 fixes the constructor (copy the headers of a foreign Response); no 1.x release has it.
//
// The remedy is the one hono documents for a fetched response whose headers must change: hand on
// `new Response(response.body, response)`, built here with the real Response class (captured now, before
// @hono/node-server replaces the global one). Same status, status text, headers (copied, so editable) and body
// stream (passed on, neither read nor copied). The copy does not carry `url` and `redirected`, which Portkey never
// reads from a fetched response. Nothing else of Portkey is touched.
const realFetch = globalThis.fetch;
const RealResponse = globalThis.Response;

globalThis.fetch = async function fetch(input, init) {
  const response = await realFetch(input, init);
  return new RealResponse(response.body, response);
};
