// The room subset corecast is compared on, on Bun's built-in WebSocket pub/sub (uWebSockets):
// room:join {room} subscribes; message:send {room, content} publishes
// message:new {room, id, content, ts} to every member, the sender included.
const port = Number(process.env.PORT || 3001);
let nextId = 1;
const server = Bun.serve({
  port,
  hostname: "127.0.0.1",
  fetch(req, server) {
    if (server.upgrade(req)) return;
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
          type: "message:new", room: msg.room, id: nextId++, content: msg.content, ts: Date.now(),
        }));
      }
    },
  },
});
console.log(`bun peer on ${server.hostname}:${server.port}`);
