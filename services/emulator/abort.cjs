// Preloaded with `node -r` into dynalite: dynalite rethrows any error of an incoming request, so a client that
// cancels a call (closing its connection mid-request, as a killed worker or a cancelled context does) would crash
// the whole emulator. A request whose client went away has nobody to answer; its error is dropped instead.
'use strict';
const http = require('http');
const on = http.IncomingMessage.prototype.on;
const clientGone = new Set(['ECONNRESET', 'ECONNABORTED', 'EPIPE']);
http.IncomingMessage.prototype.on = function (event, listener) {
  if (event !== 'error' || typeof listener !== 'function') {
    return on.apply(this, arguments);
  }
  return on.call(this, event, function (err) {
    if (err && (clientGone.has(err.code) || err.message === 'aborted')) {
      return undefined;
    }
    return listener.apply(this, arguments);
  });
};
