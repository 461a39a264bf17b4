// A second peer for shared documents: Hocuspocus (Yjs), in memory, no extensions (no
// persistence, no auth hook). Every document name opens a Y.Doc on first use. `loadgen collab
// --protocol hocuspocus` drives it: a Yjs editor per connection, one update per keystroke as
// Hocuspocus's provider sends them, and Hocuspocus's SyncStatus answer as the ack.
const { Server } = require("@hocuspocus/server");

const port = Number(process.env.PORT || 3005);
const server = new Server({ port, address: "127.0.0.1", quiet: true, debounce: 60000 });
server.listen().then(() => console.log(`hocuspocus listening on ${port}`));
