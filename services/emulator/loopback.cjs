// Preloaded with `node -r` into emulators that listen on every interface in their code:
// it forces every server they start onto 127.0.0.1, so nothing is reachable from outside this machine.
'use strict';
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (first !== null && typeof first === 'object') {
    args[0] = { ...first, host: '127.0.0.1' };
  } else if (typeof first === 'number' || typeof first === 'string') {
    if (args.length === 1 || typeof args[1] === 'function') {
      args.splice(1, 0, '127.0.0.1');
    } else {
      args[1] = '127.0.0.1';
    }
  }
  return listen.apply(this, args);
};
