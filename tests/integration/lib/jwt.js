// Signing JWTs for the auth tests with node's crypto: HS256/384/512, RS256, ES256, and
// the broken kinds a server must refuse (forged, alg none, confused algorithms).
'use strict';

const crypto = require('node:crypto');

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const enc = (obj) => b64url(JSON.stringify(obj));

// sign(payload, { alg, key, header }) -> "header.payload.signature"
function sign(payload, { alg = 'HS256', key, header = {} } = {}) {
  const h = enc({ alg, typ: 'JWT', ...header });
  const input = `${h}.${enc(payload)}`;
  let sig;
  if (alg === 'none') sig = '';
  else if (alg.startsWith('HS')) sig = crypto.createHmac(`sha${alg.slice(2)}`, key).update(input).digest();
  else if (alg.startsWith('RS')) sig = crypto.sign(`sha${alg.slice(2)}`, Buffer.from(input), key);
  else if (alg.startsWith('ES')) {
    sig = crypto.sign(`sha${alg.slice(2)}`, Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  } else throw new Error(`unknown alg ${alg}`);
  return `${input}.${b64url(sig)}`;
}

const now = () => Math.floor(Date.now() / 1000);

// A key pair of the given kind ('rsa' or 'ec'), PEM strings.
function keyPair(kind) {
  const { publicKey, privateKey } = kind === 'rsa'
    ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
    : crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }),
    privateKey,
  };
}

module.exports = { sign, now, keyPair, b64url };
