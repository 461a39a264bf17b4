// The peer a collaborative-editing user would pick: ShareDB with the ot-text-unicode type, in
// memory, over `ws` (one JSON message per frame, @teamwork/websocket-json-stream). Documents
// of collection `docs` are created empty on their first subscribe. `loadgen collab
// --protocol sharedb` drives it.
const http = require("http");
const { WebSocketServer } = require("ws");
const ShareDB = require("sharedb");
const otText = require("ot-text-unicode");
const WebSocketJSONStream = require("@teamwork/websocket-json-stream");

ShareDB.types.register(otText.type);
const port = Number(process.env.PORT || 3004);
const backend = new ShareDB();
const local = backend.connect();
const creating = new Map();

/** Creates `docs/id` once, before the first subscribe to it goes on. */
function ensure(id) {
  if (!creating.has(id)) {
    creating.set(id, new Promise((resolve, reject) => {
      const doc = local.get("docs", id);
      doc.fetch((err) => {
        if (err) return reject(err);
        if (doc.type) return resolve();
        doc.create("", otText.type.uri, (e) => (e && e.code !== "ERR_DOC_ALREADY_CREATED" ? reject(e) : resolve()));
      });
    }));
  }
  return creating.get(id);
}

backend.use("receive", (ctx, next) => {
  const m = ctx.data;
  if (ctx.agent === local.agent) return next(); // the creating connection itself
  if ((m.a === "s" || m.a === "f") && m.c === "docs" && typeof m.d === "string") {
    ensure(m.d).then(() => next(), next);
  } else {
    next();
  }
});

const server = http.createServer();
const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on("connection", (ws) => backend.listen(new WebSocketJSONStream(ws)));
server.listen(port, "127.0.0.1", () => console.log(`sharedb listening on ${port}`));
