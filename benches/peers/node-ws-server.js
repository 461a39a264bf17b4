// The room subset corecast is compared on, on Node.js with `ws`: room:join {room} subscribes;
// message:send {room, content} publishes message:new {room, id, from, content, ts} to every
// member, the sender included (`from` names the sender as corecast names a guest). The message
// is serialized once per publish.
const { WebSocketServer } = require("ws");
const port = Number(process.env.PORT || 3002);
const rooms = new Map();
let nextId = 1;
let nextConn = 1;
const wss = new WebSocketServer({ host: "127.0.0.1", port, perMessageDeflate: false });
wss.on("connection", (ws) => {
  const joined = new Set();
  const id = nextConn++;
  const from = { userId: `guest:${id}`, username: `guest-${id}` };
  ws.on("message", (data) => {
    let msg;
    try { msg = JSON.parse(data); } catch { return; }
    if (msg.type === "room:join") {
      if (!rooms.has(msg.room)) rooms.set(msg.room, new Set());
      rooms.get(msg.room).add(ws);
      joined.add(msg.room);
      ws.send(JSON.stringify({ type: "room:joined", room: msg.room }));
    } else if (msg.type === "message:send") {
      const members = rooms.get(msg.room);
      if (!members) return;
      const out = JSON.stringify({
        type: "message:new", room: msg.room, id: nextId++, from, content: msg.content, ts: Date.now(),
      });
      for (const m of members) m.send(out);
    }
  });
  ws.on("close", () => {
    for (const r of joined) rooms.get(r)?.delete(ws);
  });
});
console.log(`node ws peer on 127.0.0.1:${port}`);
