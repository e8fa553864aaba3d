/**
 * `l4lb convert`: HAProxy and nginx configurations in the style of their own documentation's
 * examples become l4lb YAML that `l4lb check` accepts, with a comment (and exit code 3) for what
 * could not be carried over; then the real HAProxy and nginx run the originals and l4lb the
 * converted files against the same loopback backends, and the same backends get the same
 * connections: round-robin order, weights, and the backup only when every primary is down.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseConfigText } from '../../src/config/load.js';
import { convertConfig } from '../../src/convert/index.js';
import { runL4lb, spawnL4lb, waitFor } from '../support/net.js';
import { HAPROXY, NGINX, freePort, requireBinary, spawnPeer, tempDir, waitForPort } from '../protocols/support.js';

const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

/** A backend that answers every connection with its name and closes; can go away and come back. */
class NamedBackend {
  readonly name: string;
  port = 0;
  #server: net.Server | undefined;
  readonly #sockets = new Set<net.Socket>();

  constructor(name: string) {
    this.name = name;
  }

  async listen(): Promise<this> {
    const server = net.createServer((s) => {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
      s.on('error', () => s.destroy());
      s.end(this.name);
    });
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    this.port = (server.address() as net.AddressInfo).port;
    this.#server = server;
    return this;
  }

  async close(): Promise<void> {
    const s = this.#server;
    this.#server = undefined;
    if (!s) return;
    for (const c of this.#sockets) c.destroy();
    await new Promise((r) => s.close(r));
  }
}

async function backends(t: TestContext, ...names: string[]): Promise<NamedBackend[]> {
  const out = await Promise.all(names.map((n) => new NamedBackend(n).listen()));
  t.after(() => Promise.all(out.map((b) => b.close())));
  return out;
}

/**
 * Who answers one connection. The client sends nothing and does not half-close: nginx's stream
 * proxy closes both sides as soon as the client's FIN arrives (proxy_half_close off), which
 * could beat the backend's answer.
 */
async function ask(port: number): Promise<string> {
  const s = net.connect(port, '127.0.0.1');
  let got = '';
  s.setEncoding('utf8');
  s.on('data', (c: string) => (got += c));
  await new Promise<void>((resolve, reject) => {
    s.on('close', () => resolve());
    s.on('error', reject);
  });
  return got;
}

/** Who answers `n` connections in a row, one at a time. */
async function answers(port: number, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(await ask(port));
  return out;
}

/** Counts per name. */
function counts(list: string[]): Record<string, number> {
  const c: Record<string, number> = {};
  for (const x of list) c[x] = (c[x] ?? 0) + 1;
  return c;
}

/** True when `seq` is `cycle` repeated, starting anywhere in it. */
function isRotationOf(seq: string[], cycle: string[]): boolean {
  return cycle.some((_, start) => seq.every((x, i) => x === cycle[(start + i) % cycle.length]));
}

/** Converts `text` and checks the YAML the way `l4lb check` does; returns both. */
function convertChecked(text: string, file: string) {
  const r = convertConfig(text, file);
  const cfg = parseConfigText(r.yaml, 'converted.yaml', {});
  return { ...r, cfg };
}

async function runHaproxy(t: TestContext, dir: string, cfg: string, port: number) {
  requireBinary(HAPROXY);
  const file = join(dir, 'haproxy.cfg');
  await writeFile(file, cfg);
  const peer = spawnPeer(t, HAPROXY, ['-f', file, '-db'], 'haproxy');
  await waitForPort(port, peer.child, 'haproxy');
  return peer;
}

async function stop(peer: { child: import('node:child_process').ChildProcess }): Promise<void> {
  if (peer.child.exitCode !== null || peer.child.signalCode !== null) return;
  peer.child.kill('SIGKILL');
  await once(peer.child, 'exit');
}

async function runNginx(t: TestContext, dir: string, stream: string, port: number) {
  requireBinary(NGINX);
  const file = join(dir, 'nginx.conf');
  await writeFile(file, nginxConf(dir, stream));
  const peer = spawnPeer(t, NGINX, ['-p', dir, '-c', file, '-g', `daemon off; pid ${dir}/nginx.pid;`], 'nginx');
  await waitForPort(port, peer.child, 'nginx');
  return peer;
}

function nginxConf(dir: string, stream: string): string {
  return `load_module ${NGINX_STREAM_MODULE};
${process.getuid?.() === 0 ? 'user root;' : ''}
master_process off;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
stream {
${stream}
}
`;
}

/** Writes the converted YAML and runs l4lb on it. */
async function runConverted(t: TestContext, dir: string, yaml: string) {
  const file = join(dir, 'l4lb.yaml');
  await writeFile(file, yaml);
  const check = await runL4lb(['check', file]);
  assert.equal(check.code, 0, `l4lb check accepts the converted file:\n${check.stderr}\n${yaml}`);
  const l4lb = await spawnL4lb(['--config', file]);
  t.after(() => l4lb.stop('SIGKILL'));
  return l4lb;
}

// ---------------------------------------------------------------------------------------------
// Conversion and `l4lb check`.

const HAPROXY_DOC_STYLE = `global
    log /dev/log local0
    maxconn 4096
    daemon

defaults
    mode tcp
    log global
    option tcplog
    timeout connect 5s
    timeout client 1m
    timeout server 1m

frontend ft_redis
    bind 127.0.0.1:6380 name redis
    acl trusted src 10.0.0.0/8 127.0.0.0/8
    tcp-request connection reject if !trusted
    maxconn 2000
    default_backend bk_redis

backend bk_redis
    balance leastconn
    option tcp-check
    tcp-check send PING\\r\\n
    tcp-check expect string +PONG
    tcp-check send QUIT\\r\\n
    server r1 10.0.0.11:6379 check inter 1s rise 2 fall 3 maxconn 500
    server r2 10.0.0.12:6379 check inter 1s rise 2 fall 3
    server r3 10.0.0.13:6379 backup

listen mysql-cluster
    bind 0.0.0.0:3306
    balance roundrobin
    timeout tunnel 1h
    server db1 10.0.1.1:3306 check weight 3 send-proxy-v2
    server db2 10.0.1.2:3306 check weight 1 send-proxy-v2

frontend www
    mode http
    bind :80
    default_backend web

backend web
    mode http
    server w1 10.0.2.1:80 check
`;

test('an HAProxy config becomes l4lb YAML that l4lb check accepts, with the same meaning', () => {
  const { cfg, yaml, dropped } = convertChecked(HAPROXY_DOC_STYLE, 'haproxy.cfg');
  assert.equal(dropped, true);
  assert.equal(cfg.maxConnections, 4096);
  assert.deepEqual(cfg.listeners.map((l) => [l.name, l.host, l.port, l.pool]), [
    ['ft_redis', '127.0.0.1', 6380, 'bk_redis'],
    ['mysql-cluster', '0.0.0.0', 3306, 'mysql-cluster'],
  ]);
  const redis = cfg.listeners[0];
  assert.equal(redis.maxConnections, 2000);
  assert.deepEqual(redis.acl, [{ action: 'allow', cidr: '10.0.0.0/8' }, { action: 'allow', cidr: '127.0.0.0/8' }]);
  assert.equal(redis.aclDefault, 'deny');
  assert.equal(redis.timeouts.connectMs, 5000);
  assert.equal(redis.timeouts.idleMs, 60_000);
  assert.equal(cfg.listeners[1].timeouts.idleMs, 3_600_000, 'timeout tunnel wins');
  const [bk, my] = cfg.pools;
  assert.equal(bk.balance, 'least-connections');
  assert.equal(bk.healthCheck?.type, 'send-expect');
  assert.equal(bk.healthCheck?.send?.toString(), 'PING\r\n');
  assert.deepEqual(bk.healthCheck?.expect, { kind: 'substring', value: '+PONG' });
  assert.equal(bk.healthCheck?.intervalMs, 1000);
  assert.equal(bk.healthCheck?.rise, 2);
  assert.deepEqual(bk.backends.map((b) => [b.name, b.maxConnections, b.backup, b.check]), [
    ['r1', 500, false, true],
    ['r2', 0, false, true],
    ['r3', 0, true, false],
  ]);
  assert.equal(bk.passive.consecutiveFailures, 0, 'no passive ejection, as in HAProxy');
  assert.equal(my.balance, 'weighted-round-robin');
  assert.equal(my.proxyProtocol, 'v2');
  assert.deepEqual(my.backends.map((b) => b.weight), [3, 1]);
  // What was not carried over is said, with its line and why.
  assert.match(yaml, /# haproxy\.cfg:2: not carried over: log \/dev\/log local0 -- /);
  assert.match(yaml, /# haproxy\.cfg:9: not carried over: option tcplog -- l4lb writes its own access log/);
  assert.match(yaml, /# haproxy\.cfg:15: not carried over: bind 127\.0\.0\.1:6380 name redis -- bind options name redis have no l4lb equivalent/);
  assert.match(yaml, /# haproxy\.cfg:26: not carried over: tcp-check send QUIT\\r\\n -- an l4lb check sends once and expects once/);
  assert.match(yaml, /# haproxy\.cfg:38: not carried over: frontend www -- mode http: HTTP is out of scope/);
  assert.match(yaml, /# haproxy\.cfg:43: not carried over: backend web -- mode http: HTTP is out of scope/);
});

const NGINX_DOC_STYLE = `
worker_processes 2;
events { worker_connections 1024; }

stream {
    upstream backend {
        hash $remote_addr consistent;
        server backend1.example.com:12345 weight=5;
        server 127.0.0.1:12345            max_fails=3 fail_timeout=30s;
        server unix:/tmp/backend3;
        server backup1.example.com:12345  backup;
    }

    upstream dns {
        server 192.168.0.1:53535;
        server dns.example.com:53;
    }

    map $ssl_preread_server_name $name {
        backend.example.com      backend;
        default                  dns;
    }

    server {
        listen 12345;
        proxy_connect_timeout 1s;
        proxy_timeout 3s;
        proxy_pass backend;
        allow 192.168.1.0/24;
        deny all;
    }

    server {
        listen 127.0.0.1:12346;
        proxy_pass $name;
        ssl_preread on;
    }

    server {
        listen [::1]:12347;
        proxy_pass 127.0.0.1:12346;
        proxy_protocol on;
    }

    server {
        listen 53 udp reuseport;
        proxy_pass dns;
    }
}

http {
    server { listen 80; location / { return 200; } }
}
`;

test('an nginx stream config becomes l4lb YAML that l4lb check accepts, with the same meaning', () => {
  const { cfg, yaml, dropped } = convertChecked(NGINX_DOC_STYLE, 'nginx.conf');
  assert.equal(dropped, true);
  assert.equal(cfg.workers, 2);
  const byName = new Map(cfg.pools.map((p) => [p.name, p]));
  const backend = byName.get('backend')!;
  assert.equal(backend.balance, 'maglev');
  assert.deepEqual(backend.backends.map((b) => [b.host, b.port, b.weight, b.backup]), [
    ['backend1.example.com', 12345, 5, false],
    ['127.0.0.1', 12345, 1, false],
    ['backup1.example.com', 12345, 1, true],
  ]);
  assert.equal(byName.get('dns')!.balance, 'round-robin');
  const [plain, sni, pp] = cfg.listeners;
  assert.equal(plain.host, '');
  assert.equal(plain.port, 12345);
  assert.equal(plain.timeouts.connectMs, 1000);
  assert.equal(plain.timeouts.idleMs, 3000);
  assert.deepEqual(plain.acl, [{ action: 'allow', cidr: '192.168.1.0/24' }]);
  assert.equal(plain.aclDefault, 'deny');
  assert.equal(sni.tls?.mode, 'passthrough');
  assert.deepEqual(sni.routes, [{ serverNames: ['backend.example.com'], pool: 'backend' }]);
  assert.equal(sni.pool, 'dns', "the map's default");
  assert.equal(pp.host, '::1');
  const own = byName.get(pp.pool!)!;
  assert.equal(own.proxyProtocol, 'v1');
  assert.deepEqual(own.backends.map((b) => `${b.host}:${b.port}`), ['127.0.0.1:12346']);
  assert.match(yaml, /# nginx\.conf:3: not carried over: events \{ worker_connections 1024; \} -- l4lb limits connections with maxConnections/);
  assert.match(yaml, /# nginx\.conf:10: not carried over: server unix:\/tmp\/backend3; -- l4lb connects over TCP only/);
  assert.match(yaml, /# nginx\.conf:46: not carried over: listen 53 udp reuseport; -- UDP/);
  assert.match(yaml, /# nginx\.conf:51: not carried over: http \{ -- HTTP is out of scope/);
});

test('l4lb convert exits 0 when everything was carried over, 3 when not, 2 on a syntax error with file:line', async (t) => {
  const dir = await tempDir(t, 'l4lb-convert-');
  const clean = join(dir, 'clean.cfg');
  await writeFile(clean, 'defaults\n  mode tcp\n  timeout connect 2s\nlisten db\n  bind 127.0.0.1:5432\n  server a 127.0.0.1:5433 check\n');
  const ok = await runL4lb(['convert', clean]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stderr, '');
  assert.match(ok.stdout, /^# Every directive was carried over\.$/m);

  const lossy = join(dir, 'haproxy.cfg');
  await writeFile(lossy, HAPROXY_DOC_STYLE);
  const r3 = await runL4lb(['convert', lossy]);
  assert.equal(r3.code, 3);
  assert.match(r3.stderr, /some directives were not carried over/);
  assert.match(r3.stdout, /not carried over: option tcplog/);

  const broken = join(dir, 'stream.conf');
  await writeFile(broken, 'stream {\n  upstream a {\n    server 127.0.0.1:1\n  }\n}\n');
  const r2 = await runL4lb(['convert', broken]);
  assert.equal(r2.code, 2);
  assert.equal(r2.stderr, `l4lb: ${broken}:3: "server" is not terminated by ";"\n`);
  assert.equal(r2.stdout, '');

  const stray = join(dir, 'bad.cfg');
  await writeFile(stray, '# a comment\n  server a 127.0.0.1:1\nlisten x\n');
  const r2b = await runL4lb(['convert', stray]);
  assert.equal(r2b.code, 2);
  assert.match(r2b.stderr, new RegExp(`^l4lb: ${stray.replace(/[.]/g, '\\.')}:2: "server" outside any section`));

  const missing = await runL4lb(['convert', join(dir, 'nope.cfg')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /nope\.cfg: cannot read it/);
});

// ---------------------------------------------------------------------------------------------
// Side by side: the original under HAProxy or nginx, the conversion under l4lb.

test('HAProxy and converted l4lb: the same round-robin order, weights, and backup only when every primary is down', async (t) => {
  const dir = await tempDir(t, 'l4lb-convert-haproxy-');
  const [a, b, c, w1, w2, p1, p2, spare] = await backends(t, 'a', 'b', 'c', 'w1', 'w2', 'p1', 'p2', 'spare');
  const [rrPort, wPort, bkPort] = [await freePort(), await freePort(), await freePort()];
  const original = `global
    log stderr format raw local0 err
defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s
listen rr
    bind 127.0.0.1:${rrPort}
    balance roundrobin
    server a 127.0.0.1:${a.port}
    server b 127.0.0.1:${b.port}
    server c 127.0.0.1:${c.port}
listen weighted
    bind 127.0.0.1:${wPort}
    balance roundrobin
    server w1 127.0.0.1:${w1.port} weight 3
    server w2 127.0.0.1:${w2.port} weight 1
frontend fe_backup
    bind 127.0.0.1:${bkPort}
    default_backend be_backup
backend be_backup
    # The spare would fail this check (it answers "spare"); HAProxy does not check it, as it has
    # no "check", and neither does l4lb with the converted check: false.
    option tcp-check
    tcp-check expect rstring ^p[12]$
    server p1 127.0.0.1:${p1.port} check inter 100 rise 1 fall 1
    server p2 127.0.0.1:${p2.port} check inter 100 rise 1 fall 1
    server spare 127.0.0.1:${spare.port} backup
`;
  const { yaml, cfg } = convertChecked(original, 'haproxy.cfg');
  const pool = cfg.pools.find((p) => p.name === 'be_backup')!;
  assert.deepEqual(pool.healthCheck?.expect, { kind: 'regex', value: '^p[12]$' });
  assert.deepEqual(pool.backends.map((b) => b.check), [true, true, false]);

  const observe = async () => {
    // The port probes took turns already; a few more connections settle any start-up order.
    await answers(rrPort, 3);
    const rr = await answers(rrPort, 9);
    const weighted = counts(await answers(wPort, 16));
    const beforeDown = await answers(bkPort, 6);
    await p1.close();
    await p2.close();
    // Once the checks see both primaries down, every connection goes to the backup.
    await waitFor(async () => (await ask(bkPort)) === 'spare', 5000, 'the backup to take over');
    const afterDown = await answers(bkPort, 4);
    await p1.listen();
    await p2.listen();
    await waitFor(async () => (await ask(bkPort)) !== 'spare', 5000, 'the primaries to come back');
    return { rr, weighted, beforeDown, afterDown };
  };

  const haproxy = await runHaproxy(t, dir, original, bkPort);
  await waitForPort(rrPort);
  await waitForPort(wPort);
  const h = await observe();
  await stop(haproxy);
  await runConverted(t, dir, yaml);
  const l = await observe();

  for (const [who, r] of [['haproxy', h], ['l4lb', l]] as const) {
    assert.ok(isRotationOf(r.rr, ['a', 'b', 'c']), `${who}: round robin in list order: ${r.rr.join(' ')}`);
    assert.deepEqual(r.weighted, { w1: 12, w2: 4 }, `${who}: weights 3:1`);
    assert.equal(r.beforeDown.filter((x) => x === 'spare').length, 0, `${who}: no backup while a primary is up`);
    assert.deepEqual(new Set(r.beforeDown), new Set(['p1', 'p2']), `${who}: both primaries used`);
    assert.deepEqual(r.afterDown, ['spare', 'spare', 'spare', 'spare'], `${who}: the backup once both are down`);
  }
});

test('nginx and converted l4lb: the same round-robin order, smooth weights, and backup only when every primary is down', async (t) => {
  const dir = await tempDir(t, 'l4lb-convert-nginx-');
  const [a, b, c, w1, w2, w3, p1, p2, spare] = await backends(t, 'a', 'b', 'c', 'w1', 'w2', 'w3', 'p1', 'p2', 'spare');
  const [rrPort, wPort, bkPort] = [await freePort(), await freePort(), await freePort()];
  const stream = `
    upstream rr { server 127.0.0.1:${a.port}; server 127.0.0.1:${b.port}; server 127.0.0.1:${c.port}; }
    upstream weighted {
        server 127.0.0.1:${w1.port} weight=5;
        server 127.0.0.1:${w2.port};
        server 127.0.0.1:${w3.port};
    }
    upstream with_backup {
        server 127.0.0.1:${p1.port};
        server 127.0.0.1:${p2.port};
        server 127.0.0.1:${spare.port} backup;
    }
    server { listen 127.0.0.1:${rrPort}; proxy_pass rr; }
    server { listen 127.0.0.1:${wPort}; proxy_pass weighted; }
    server { listen 127.0.0.1:${bkPort}; proxy_pass with_backup; proxy_connect_timeout 2s; }
`;
  const { yaml } = convertChecked(nginxConf(dir, stream), 'nginx.conf');

  const observe = async () => {
    // The port probes took turns already; a few more connections settle any start-up order.
    await answers(rrPort, 3);
    const rr = await answers(rrPort, 9);
    const weighted = await answers(wPort, 14);
    const beforeDown = await answers(bkPort, 6);
    await p1.close();
    await p2.close();
    const afterDown = await answers(bkPort, 4);
    await p1.listen();
    await p2.listen();
    return { rr, weighted, beforeDown, afterDown };
  };

  const nginx = await runNginx(t, dir, stream, bkPort);
  await waitForPort(rrPort);
  await waitForPort(wPort);
  const n = await observe();
  await stop(nginx);
  // nginx keeps failed servers out for fail_timeout (10s); l4lb's conversion does the same, so
  // the primaries are up again for l4lb: it runs on new listeners with fresh state.
  await runConverted(t, dir, yaml);
  const l = await observe();

  const smooth = ['w1', 'w1', 'w2', 'w1', 'w3', 'w1', 'w1'];
  for (const [who, r] of [['nginx', n], ['l4lb', l]] as const) {
    assert.ok(isRotationOf(r.rr, ['a', 'b', 'c']), `${who}: round robin in list order: ${r.rr.join(' ')}`);
    assert.ok(isRotationOf(r.weighted, smooth), `${who}: smooth weighted round robin 5,1,1: ${r.weighted.join(' ')}`);
    assert.equal(r.beforeDown.filter((x) => x === 'spare').length, 0, `${who}: no backup while a primary is up`);
    assert.deepEqual(r.afterDown, ['spare', 'spare', 'spare', 'spare'], `${who}: the backup once both are down`);
  }
});
