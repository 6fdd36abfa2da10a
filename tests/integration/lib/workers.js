// Clients spread over a server's workers (`workers: N`).
'use strict';

const { connect } = require('./client');
const { uid } = require('./helpers');

// Opens clients on /chat until two workers have some and there are at least `min`
// (the kernel spreads connections by a hash of the source port, so a few dozen are
// plenty); bounded by `max`. Resolves with { clients, nodes } (nodes: the hello's
// node names seen).
async function clientsOnBothNodes(server, prefix, { min = 6, max = 60 } = {}) {
  const clients = [];
  const nodes = new Set();
  for (let i = 0; i < max && (nodes.size < 2 || clients.length < min); i++) {
    const c = await connect(server.url(`/chat?user=${uid(prefix)}`));
    clients.push(c);
    nodes.add(c.hello.data.node);
  }
  return { clients, nodes };
}

module.exports = { clientsOnBothNodes };
