// What the kernel says about the server process (Linux /proc): whether it still holds
// the socket of a given client connection, its resident memory, its metrics.
'use strict';

const fs = require('node:fs');
const http = require('node:http');

// Inodes of the TCP sockets with local port localPort, by remote port.
function tcpInodes(localPort) {
  const out = new Map();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      if (parseInt(f[1].split(':')[1], 16) === localPort) out.set(parseInt(f[2].split(':')[1], 16), f[9]);
    }
  }
  return out;
}

// The socket inodes process pid holds as file descriptors.
function socketsOf(pid) {
  const out = new Set();
  let fds = [];
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch (e) {
    return out;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.add(m[1]);
    } catch (e) {
      // closed meanwhile
    }
  }
  return out;
}

// How many of the connections from the clients' ports `clientPorts` to the server's
// `serverPort` process pid still holds open as file descriptors. A socket the kernel
// reset or closed is gone from /proc/net/tcp; an orphan has inode 0.
function socketsHeld(pid, serverPort, clientPorts) {
  const inodes = tcpInodes(serverPort);
  const held = socketsOf(pid);
  return clientPorts.filter((p) => held.has(inodes.get(p))).length;
}

function holdsSocket(pid, serverPort, clientPort) {
  return socketsHeld(pid, serverPort, [clientPort]) === 1;
}

// { rss, hwm } of process pid in KiB (resident now, and its peak).
function memory(pid) {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (name) => Number((text.match(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm')) || [])[1]);
  return { rss: kib('VmRSS'), hwm: kib('VmHWM') };
}

// GET /metrics and parse it into { 'name{labels}': value }.
function metrics(port) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics', timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        const out = {};
        for (const line of body.split('\n')) {
          if (!line || line.startsWith('#')) continue;
          const i = line.lastIndexOf(' ');
          out[line.slice(0, i)] = Number(line.slice(i + 1));
        }
        resolve(out);
      });
    }).on('error', reject).on('timeout', function onTimeout() { this.destroy(new Error('metrics timeout')); });
  });
}

module.exports = { socketsHeld, holdsSocket, memory, metrics };
