#!/usr/bin/env node
// Starts the S3-compatible test server. The package's tarball ships no bin/, so its CLI module is driven
// directly. Used by the exchange tests and the exchange benchmark, e.g.:
//   node tests/s3/s3rver.js -d /tmp/s3 -a 127.0.0.1 -p 0 --silent --configure-bucket eph-test
// It prints "S3rver listening on 127.0.0.1:<port>" once it accepts connections.
// Run node with --openssl-legacy-provider: s3rver encrypts ListObjectsV2 continuation tokens with DES, which
// OpenSSL 3 only offers through its legacy provider (without it every listing past the first page fails with 500).
'use strict';
require('@20minutes/s3rver/lib/cli.js').parseAsync(process.argv).catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(1);
});
