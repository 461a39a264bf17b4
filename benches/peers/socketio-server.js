// The room subset corecast is compared on, on Socket.IO 4 (WebSocket transport only):
// emit room:join {room} joins and answers room:joined; message:send {room, content} emits
// message:new {room, id, from, content, ts} to the room, the sender included (`from` names the
// sender as corecast names a guest).
const { Server } = require("socket.io");
const port = Number(process.env.PORT || 3003);
const io = new Server(port, { transports: ["websocket"], serveClient: false, perMessageDeflate: false });
let nextId = 1;
let nextConn = 1;
io.on("connection", (socket) => {
  const id = nextConn++;
  const from = { userId: `guest:${id}`, username: `guest-${id}` };
  socket.on("room:join", (msg) => {
    socket.join(msg.room);
    socket.emit("room:joined", { room: msg.room });
  });
  socket.on("message:send", (msg) => {
    io.to(msg.room).emit("message:new", {
      room: msg.room, id: nextId++, from, content: msg.content, ts: Date.now(),
    });
  });
});
console.log(`socket.io peer on 127.0.0.1:${port}`);
