// A bounded HTTP request helper for the server's HTTP endpoints.
'use strict';

const http = require('node:http');
const net = require('node:net');

// request(method, url, { headers, body, timeout }) -> { status, headers, text, json }.
// `body` objects are sent as JSON, strings and Buffers as they are; `json` is the
// parsed body or undefined.
function request(method, url, { headers = {}, body, timeout = 3000 } = {}) {
  return new Promise((resolve, reject) => {
    let payload;
    const h = { ...headers };
    if (body !== undefined) {
      payload = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
      if (!h['content-type']) h['content-type'] = 'application/json';
      h['content-length'] = Buffer.byteLength(payload);
    }
    const req = http.request(url, { method, headers: h, timeout, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try {
          json = JSON.parse(text);
        } catch (e) {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no answer within ${timeout} ms`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

// Sends `bytes` (a string or Buffer, exactly as given) to 127.0.0.1:port and collects
// what comes back until the server closes or `ms` pass: { status, head, body, closed }.
// For requests node's http module will not send (no Content-Length, bad headers).
function rawRequest(port, bytes, ms = 3000) {
  return new Promise((resolve) => {
    const chunks = [];
    let done = false;
    const socket = net.connect(port, '127.0.0.1', () => socket.write(bytes));
    const finish = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      const split = text.indexOf('\r\n\r\n');
      resolve({
        status: m ? Number(m[1]) : 0,
        head: split >= 0 ? text.slice(0, split) : text,
        body: split >= 0 ? text.slice(split + 4) : '',
        closed,
      });
    };
    const timer = setTimeout(() => finish(false), ms);
    socket.on('data', (c) => chunks.push(c));
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
  });
}

// A WebSocket upgrade request for `target` (path and query, sent as is) with extra
// header lines; resolves like rawRequest: 101 when upgraded, else the refusal.
function upgradeRequest(port, target, headers = [], ms = 3000) {
  const lines = [`GET ${target} HTTP/1.1`, `Host: 127.0.0.1:${port}`, 'Upgrade: websocket',
    'Connection: Upgrade', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    ...headers];
  return rawRequest(port, `${lines.join('\r\n')}\r\n\r\n`, ms);
}

module.exports = { request, rawRequest, upgradeRequest };
