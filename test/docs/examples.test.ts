/**
 * The examples in README.md and docs/ run as written.
 *
 * Shell: every line of a ```sh block that starts with `l4lb` or `npx l4lb` is run with the built
 * CLI, after a minimal rewrite so that it touches only this machine's loopback and test servers:
 * - `npx l4lb` / `l4lb` → `node bin/l4lb.js`; the line is cut at a `#` comment and at `&&`, `;`,
 *   `|` or `>` (what follows is not l4lb);
 * - addresses to listen on (`--listen`, `--admin`, `--udp`) → `127.0.0.1:0`;
 * - each BACKEND argument → a loopback echo server of the test (UDP ones after `--udp`);
 * - a config file argument (`*.yaml`) → README's "A config file" example, its listen addresses
 *   rewritten to `127.0.0.1:0` and its backends to echo servers; `*.cfg` / `*.conf` → an HAProxy /
 *   nginx file for `convert`.
 * A command that runs a proxy must print `listening on`, relay one request to an echo server and
 * exit 0 on SIGTERM; `check` must exit 0, `convert` 0 or 3.
 *
 * Config blocks: every ```yaml / ```json block that is a config, or a part of one (a pool, a
 * listener, a `backends:` list…), passes `l4lb check` once completed minimally: a part goes into
 * a skeleton (one listener on 127.0.0.1:0, one pool with one backend), pools that listeners name
 * are added, and `${NAME}` variables are given a value.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { readFileSync, readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { parseConfigText } from '../../src/config/load.js';
import { ROOT, echoServer, request, runL4lb, spawnL4lb, waitFor, type TestServer } from '../support/net.js';
import { tempDir } from '../protocols/support.js';

interface Block {
  file: string;
  line: number;
  lang: string;
  body: string;
}

function markdownBlocks(): Block[] {
  const files = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  const out: Block[] = [];
  for (const file of files) {
    const text = readFileSync(join(ROOT, file), 'utf8');
    const re = /^```(\w*)\n([\s\S]*?)^```/gm;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      out.push({ file, line: text.slice(0, m.index).split('\n').length, lang: m[1], body: m[2] });
    }
  }
  return out;
}

const BLOCKS = markdownBlocks();

// ---------------------------------------------------------------------------------------------
// Shell lines.

/** Splits a shell line into words (quotes, no expansion), stopping at what is not l4lb's. */
function shellWords(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let has = false;
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote !== undefined) {
      if (c === quote) quote = undefined;
      else cur += c;
      continue;
    }
    if (c === "'" || c === '"') {
      quote = c;
      has = true;
    } else if (c === ' ' || c === '\t') {
      if (has) out.push(cur);
      cur = '';
      has = false;
    } else if ('#;|&>'.includes(c) && !has) break;
    else {
      cur += c;
      has = true;
    }
  }
  if (has) out.push(cur);
  return out;
}

/** Options followed by a value, and what the rewrite does with it. */
const LISTEN_OPTIONS = new Set(['--listen', '-l', '--admin', '--udp']);
const VALUE_OPTIONS = new Set([...LISTEN_OPTIONS, '--balance', '-b', '--connect-timeout', '--retries', '--idle-timeout', '--workers', '--config', '-c', '--log-level', '--access-log', '--from']);

interface ShellExample {
  where: string;
  line: string;
  words: string[];
}

const SHELL_EXAMPLES: ShellExample[] = BLOCKS.filter((b) => b.lang === 'sh' || b.lang === 'bash').flatMap((b) =>
  b.body.split('\n').flatMap((line, i) => {
    const words = shellWords(line.trim());
    if (words[0] === 'npx') words.shift();
    return words[0] === 'l4lb' ? [{ where: `${b.file}:${b.line + 1 + i}`, line: line.trim(), words: words.slice(1) }] : [];
  }),
);

const HAPROXY_FIXTURE = 'defaults\n  mode tcp\nlisten db\n  bind 127.0.0.1:5432\n  server a 127.0.0.1:5433 check\n';
const NGINX_FIXTURE = 'stream {\n  upstream db { server 127.0.0.1:5433; }\n  server { listen 127.0.0.1:5432; proxy_pass db; }\n}\n';

/** README's "A config file" example, with only its addresses rewritten to loopback test ones. */
function configFixture(backends: TestServer[]): string {
  const readme = BLOCKS.filter((b) => b.file === 'README.md' && b.lang === 'yaml');
  const example = readme.find((b) => /^listeners:/m.test(b.body));
  assert.ok(example, 'README.md has a config file example');
  let next = 0;
  return example.body
    .replace(/listen: \S+/g, 'listen: 127.0.0.1:0')
    .replace(/\b127\.0\.0\.1:9\d{3}\b/g, () => `127.0.0.1:${backends[next++ % backends.length].port}`);
}

/** A UDP server that sends every datagram back. */
async function udpEcho(t: TestContext): Promise<number> {
  const s = dgram.createSocket('udp4');
  s.on('message', (msg, from) => s.send(msg, from.port, from.address));
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  t.after(() => s.close());
  return s.address().port;
}

async function udpRequest(address: string, data: string): Promise<string> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  const s = dgram.createSocket('udp4');
  try {
    s.send(data, port, host);
    const [msg] = (await Promise.race([
      once(s, 'message'),
      new Promise((_, reject) => setTimeout(() => reject(new Error('no UDP answer')), 5000)),
    ])) as [Buffer];
    return msg.toString();
  } finally {
    s.close();
  }
}

test('README.md and docs/ have shell examples that start l4lb', () => {
  assert.ok(SHELL_EXAMPLES.length >= 8, SHELL_EXAMPLES.map((e) => e.where).join(', '));
  assert.ok(SHELL_EXAMPLES.some((e) => e.where.startsWith('README.md')));
});

for (const ex of SHELL_EXAMPLES) {
  test(`${ex.where}: ${ex.line}`, async (t) => {
    const dir = await tempDir(t, 'l4lb-doc-sh-');
    const tcp = [await echoServer(), await echoServer(), await echoServer()];
    t.after(() => Promise.all(tcp.map((s) => s.close())));
    const udp = ex.words.includes('--udp');
    const udpPorts = udp ? [await udpEcho(t), await udpEcho(t)] : [];
    const args: string[] = [];
    let backend = 0;
    let file: string | undefined;
    for (let i = 0; i < ex.words.length; i++) {
      const w = ex.words[i];
      if (VALUE_OPTIONS.has(w)) {
        const value = ex.words[++i];
        args.push(w, LISTEN_OPTIONS.has(w) ? '127.0.0.1:0' : value);
        if (w === '--config' || w === '-c') file = value;
      } else if (w.startsWith('-') || w === 'check' || w === 'convert') args.push(w);
      else if (/\.(ya?ml|json|cfg|conf)$/.test(w)) {
        args.push(w);
        file = w;
      } else {
        const port = udp ? udpPorts[backend++ % udpPorts.length] : tcp[backend++ % tcp.length].port;
        args.push(`127.0.0.1:${port}`);
      }
    }
    if (file !== undefined) {
      const local = join(dir, file.replace(/^.*\//, ''));
      const text = /\.cfg$/.test(file) ? HAPROXY_FIXTURE : /\.conf$/.test(file) ? NGINX_FIXTURE : configFixture(tcp);
      await writeFile(local, text);
      args[args.indexOf(file)] = local;
    }

    if (args[0] === 'check' || args.includes('--check')) {
      const r = await runL4lb(args);
      assert.equal(r.code, 0, r.stderr);
      return;
    }
    if (args[0] === 'convert') {
      const r = await runL4lb(args);
      assert.ok(r.code === 0 || r.code === 3, r.stderr);
      assert.match(r.stdout, /^listeners:/m);
      return;
    }
    const l4lb = await spawnL4lb(args, { env: { L4LB_ADMIN_TOKEN: '' } });
    t.after(() => l4lb.stop('SIGKILL'));
    const address = l4lb.addresses[0].replace(/ udp$/, '');
    if (udp) assert.equal(await udpRequest(address, 'ping'), 'ping');
    else assert.equal(await request(l4lb.port, 'ping'), 'ping');
    if (udp) {
      // The ping's session lives until its idle timeout (30 s), and a drain waits for it: once
      // the drain has begun, the second SIGTERM ends it now (docs/operations.md), exit 0 too.
      l4lb.child.kill('SIGTERM');
      await waitFor(() => /"msg":"draining"/.test(l4lb.stderr()), 10_000, 'the draining line');
    }
    assert.equal(await l4lb.stop('SIGTERM'), 0);
  });
}

// ---------------------------------------------------------------------------------------------
// Config blocks.

type Rec = Record<string, unknown>;

const TOP_KEYS = new Set(['listeners', 'pools', 'workers', 'maxConnections', 'shutdown', 'log', 'admin']);
const LISTENER_KEYS = new Set(['listen', 'acl', 'aclDefault', 'routes', 'acceptProxy', 'sourceLimits', 'timeouts', 'overLimit', 'protocol', 'udp', 'retries']);
const POOL_KEYS = new Set(['backends', 'balance', 'hashKey', 'healthCheck', 'passive', 'slowStart', 'dns', 'queue', 'proxyProtocol']);

function isRec(v: unknown): v is Rec {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Removes the indentation every line shares (fragments cut out of a larger file). */
function dedent(s: string): string {
  const lines = s.split('\n');
  const indent = Math.min(...lines.filter((l) => l.trim() !== '').map((l) => /^ */.exec(l)![0].length));
  return lines.map((l) => l.slice(indent)).join('\n');
}

/** The block as a whole config, or undefined when it is not a config or a part of one. */
function completed(value: unknown): Rec | undefined {
  let doc: Rec;
  if (Array.isArray(value)) {
    if (value.every((x) => typeof x === 'string' || (isRec(x) && 'address' in x))) doc = { pools: [{ name: 'p', backends: value }] };
    else if (value.every((x) => isRec(x) && 'listen' in x)) doc = { listeners: value };
    else if (value.every((x) => isRec(x) && 'name' in x && Object.keys(x).some((k) => POOL_KEYS.has(k)))) doc = { pools: value };
    else return undefined;
  } else if (isRec(value)) {
    const keys = Object.keys(value);
    if ('msg' in value || 'level' in value) return undefined; // a log line
    if (keys.some((k) => TOP_KEYS.has(k))) doc = { ...value };
    else if (keys.some((k) => POOL_KEYS.has(k))) doc = { pools: [{ name: 'p', ...value }] };
    else if (keys.some((k) => LISTENER_KEYS.has(k))) doc = { listeners: [{ listen: '127.0.0.1:0', ...value }] };
    else return undefined;
  } else return undefined;
  const pools = Array.isArray(doc.pools) ? (doc.pools as Rec[]) : [];
  doc.pools = pools;
  for (const p of pools) if (isRec(p) && p.backends === undefined && p.dns === undefined) p.backends = ['127.0.0.1:9'];
  if (pools.length === 0) pools.push({ name: 'p', backends: ['127.0.0.1:9'] });
  const listeners = Array.isArray(doc.listeners) ? (doc.listeners as Rec[]) : [];
  doc.listeners = listeners;
  if (listeners.length === 0) listeners.push({ listen: '127.0.0.1:0', pool: String(pools[0].name ?? 'p') });
  const names = new Set(pools.map((p) => String(p.name)));
  for (const l of listeners) {
    if (!isRec(l)) continue;
    if (l.pool === undefined && l.routes === undefined) l.pool = String(pools[0].name);
    const refs = [l.pool, ...(Array.isArray(l.routes) ? l.routes.map((r) => (isRec(r) ? r.pool : undefined)) : [])];
    for (const ref of refs) {
      if (typeof ref === 'string' && !names.has(ref)) {
        names.add(ref);
        pools.push({ name: ref, backends: ['127.0.0.1:9'] });
      }
    }
  }
  return doc;
}

const CONFIG_BLOCKS = BLOCKS.filter((b) => b.lang === 'yaml' || b.lang === 'json');

/** The blocks checked as configs (the others are API answers and log lines). */
const checkedAsConfig: string[] = [];

test('docs have YAML and JSON config examples', () => {
  assert.ok(CONFIG_BLOCKS.length >= 10);
});

for (const b of CONFIG_BLOCKS) {
  test(`${b.file}:${b.line}: the ${b.lang} example passes l4lb check`, () => {
    const text = dedent(b.body);
    let value: unknown;
    try {
      // JSON lines (log output) are several documents: not a config.
      if (b.lang === 'json' && text.trim().split('\n').length > 1 && text.trim().split('\n').every((l) => /^\{.*\}$/.test(l.trim()))) return;
      value = b.lang === 'json' ? JSON.parse(text) : parseYaml(text, { merge: true });
    } catch (err) {
      assert.fail(`${b.file}:${b.line}: the example does not parse: ${(err as Error).message}`);
    }
    const doc = completed(value);
    if (doc === undefined) return; // not a config (an API answer, a log line)
    const env = Object.fromEntries([...text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => [m[1], 'x']));
    checkedAsConfig.push(`${b.file}:${b.line}`);
    try {
      parseConfigText(JSON.stringify(doc), `${b.file}.json`, env);
    } catch (err) {
      assert.fail(`${b.file}:${b.line}: the example (completed: ${JSON.stringify(doc)}) fails l4lb check:\n${(err as Error).message}`);
    }
  });
}

test('most example blocks are configs or parts of one, and were checked', () => {
  // Runs after the tests above (node:test runs a file's tests in order).
  assert.ok(checkedAsConfig.length >= 20, `only ${checkedAsConfig.length} of ${CONFIG_BLOCKS.length} blocks: ${checkedAsConfig.join(', ')}`);
});
