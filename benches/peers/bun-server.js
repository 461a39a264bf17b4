// The room subset corecast is compared on, on Bun's built-in WebSocket pub/sub (uWebSockets):
// room:join {room} subscribes; message:send {room, content} publishes
// message:new {room, id, from, content, ts} to every member, the sender included; `from` is
// the sender as corecast names a guest, so both servers send the same bytes per message.
const port = Number(process.env.PORT || 3001);
let nextId = 1;
let nextConn = 1;
const server = Bun.serve({
  port,
  hostname: "127.0.0.1",
  fetch(req, server) {
    const id = nextConn++;
    if (server.upgrade(req, { data: { from: { userId: `guest:${id}`, username: `guest-${id}` } } })) return;
    return new Response("websocket only", { status: 400 });
  },
  websocket: {
    publishToSelf: true,
    message(ws, data) {
      let msg;
      try { msg = JSON.parse(data); } catch { return; }
      if (msg.type === "room:join") {
        ws.subscribe(msg.room);
        ws.send(JSON.stringify({ type: "room:joined", room: msg.room }));
      } else if (msg.type === "message:send") {
        server.publish(msg.room, JSON.stringify({
          type: "message:new", room: msg.room, id: nextId++, from: ws.data.from, content: msg.content,
          ts: Date.now(),
        }));
      }
    },
  },
});
console.log(`bun peer on ${server.hostname}:${server.port}`);
