/**
 * @module convert/haproxy — an HAProxy configuration (`mode tcp` frontends, backends and listens)
 * as an l4lb config. What has no l4lb equivalent becomes a note saying why.
 */
import { cidrError, FOREIGN_BALANCER_NAMES } from '../config/schema.js';
import { ConvertSyntaxError, Notes, durationMs, durationOf, type Converted, type Section } from './model.js';

interface Line {
  n: number;
  words: string[];
  text: string;
}

interface Block {
  kind: string;
  name: string;
  args: string[];
  line: number;
  text: string;
  body: Line[];
}

/** Section keywords that start a block. */
const SECTION_KINDS = new Set([
  'global', 'defaults', 'frontend', 'backend', 'listen', 'peers', 'resolvers', 'userlist', 'mailers', 'cache', 'program',
  'http-errors', 'ring', 'fcgi-app', 'crt-store', 'traces',
]);

/** What HAProxy makes of `\\r`, `\\n`, `\\t`; any other escaped character stands for itself. */
const ESCAPES: Record<string, string> = { r: '\r', n: '\n', t: '\t' };

/** Splits one line into words: quotes group, backslash escapes, `#` starts a comment. */
function words(line: string, n: number): string[] {
  const out: string[] = [];
  let cur = '';
  let has = false;
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote !== undefined) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < line.length) cur += escaped(line, ++i);
      else cur += c;
      continue;
    }
    if (c === '"' || c === "'") {
      quote = c;
      has = true;
    } else if (c === '\\' && i + 1 < line.length) {
      cur += escaped(line, ++i);
      has = true;
    } else if (c === '#') break;
    else if (c === ' ' || c === '\t') {
      if (has) out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += c;
      has = true;
    }
  }
  if (quote !== undefined) throw new ConvertSyntaxError(n, `unterminated ${quote} quote`);
  if (has) out.push(cur);
  return out;
}

function escaped(line: string, i: number): string {
  return ESCAPES[line[i]] ?? line[i];
}

function blocks(text: string): { blocks: Block[]; before: Line[] } {
  const out: Block[] = [];
  const before: Line[] = [];
  let cur: Block | undefined;
  text.split(/\r?\n/).forEach((raw, i) => {
    const n = i + 1;
    const w = words(raw, n);
    if (w.length === 0) return;
    if (SECTION_KINDS.has(w[0])) {
      cur = { kind: w[0], name: w[1] ?? '', args: w.slice(2), line: n, text: raw.trim(), body: [] };
      out.push(cur);
      return;
    }
    (cur ? cur.body : before).push({ n, words: w, text: raw.trim() });
  });
  return { blocks: out, before };
}

/** Settings a `defaults` section passes on to the proxies after it. */
interface Defaults {
  mode: string;
  lines: Line[];
}

/** HAProxy's default `inter`, `rise`, `fall` for server checks. */
const HAPROXY_INTER = '2s';
const HAPROXY_RISE = 3;
const HAPROXY_FALL = 3;

/** `*:80`, `:80`, `0.0.0.0:80`, `[::]:80`, `ipv6@:::80`, `::1:80` → l4lb's listen form; else an error. */
function listenAddress(s: string): string | { error: string } {
  let a = s;
  for (const p of ['ipv4@', 'ipv6@', 'tcp@', 'tcp4@', 'tcp6@']) if (a.startsWith(p)) a = a.slice(p.length);
  if (/^(unix|abns|fd|sockpair|udp[46]?|quic[46]?)@/.test(a) || a.startsWith('/')) return { error: 'l4lb listens on TCP addresses only' };
  const m = /^(.*):(\d+)(-\d+)?$/.exec(a);
  if (m === null) return { error: 'no port' };
  if (m[3] !== undefined) return { error: 'port ranges are not supported: one listener per port' };
  let host = m[1];
  if (host === '*' || host === '') host = '';
  else if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host === '::' || host === '') return `:${m[2]}`;
  return host.includes(':') ? `[${host}]:${m[2]}` : `${host}:${m[2]}`;
}

function serverAddress(s: string): string | undefined {
  const r = listenAddress(s);
  if (typeof r !== 'string' || r.startsWith(':')) return undefined;
  return r;
}

/** Converts HAProxy config text. Throws ConvertSyntaxError for text that is not HAProxy's. */
export function convertHaproxy(text: string): Converted {
  const { blocks: all, before } = blocks(text);
  const result: Converted = { source: 'HAProxy', top: {}, listeners: [], pools: [], notes: [] };
  const top = new Notes();
  if (before.length > 0) throw new ConvertSyntaxError(before[0].n, `"${before[0].words[0]}" outside any section (expected global, defaults, frontend, backend or listen)`);
  if (all.length === 0) throw new ConvertSyntaxError(1, 'no HAProxy sections (global, defaults, frontend, backend, listen)');

  let defaults: Defaults = { mode: 'tcp', lines: [] };
  // Backends by name, converted once; frontends refer to them.
  const backendBlocks = new Map<string, { block: Block; defaults: Defaults }>();
  const frontends: Array<{ block: Block; defaults: Defaults }> = [];
  for (const b of all) {
    if (b.kind === 'global') globalSection(b, result, top);
    else if (b.kind === 'defaults') {
      const mode = b.body.find((l) => l.words[0] === 'mode')?.words[1] ?? 'tcp';
      defaults = { mode, lines: b.body };
      for (const l of b.body) if (!carriedFromDefaults(l)) top.drop(l.n, l.text, defaultsWhy(l));
    } else if (b.kind === 'backend') backendBlocks.set(b.name, { block: b, defaults });
    else if (b.kind === 'frontend') frontends.push({ block: b, defaults });
    else if (b.kind === 'listen') {
      backendBlocks.set(b.name, { block: b, defaults });
      frontends.push({ block: b, defaults });
    } else {
      top.drop(b.line, b.text, `the ${b.kind} section has no l4lb equivalent`);
    }
  }

  const modeOf = (b: Block, d: Defaults): { mode: string; line?: Line } => {
    const line = b.body.find((l) => l.words[0] === 'mode');
    return { mode: line?.words[1] ?? d.mode, line };
  };
  const outOfScope = (b: Block): void => {
    top.drop(b.line, b.text, `mode http: HTTP is out of scope for l4lb (a TCP proxy); this ${b.kind} was not converted`);
  };

  // Pools first: a listener's timeouts and retries come from its backend.
  const pools = new Map<string, PoolResult>();
  for (const [name, { block, defaults: d }] of backendBlocks) {
    if (modeOf(block, d).mode !== 'tcp') {
      if (block.kind === 'backend') outOfScope(block);
      continue;
    }
    const p = convertBackend(block, d);
    pools.set(name, p);
    result.pools.push(p.section);
  }
  for (const { block, defaults: d } of frontends) {
    if (modeOf(block, d).mode !== 'tcp') {
      outOfScope(block);
      continue;
    }
    result.listeners.push(...convertFrontend(block, d, pools, block.kind === 'listen' ? block.name : undefined));
  }
  result.notes.push(...top.list.sort((a, b) => a.line - b.line));
  return result;
}

/** Lines of `defaults` that the proxies after it take over. */
function carriedFromDefaults(l: Line): boolean {
  const [k, a] = l.words;
  if (k === 'option') return a === 'tcp-check' || a === 'redis-check' || a === 'redispatch';
  return ['mode', 'timeout', 'balance', 'hash-type', 'retries', 'maxconn', 'default-server', 'tcp-check'].includes(k);
}

function defaultsWhy(l: Line): string {
  const [k, a] = l.words;
  if (k === 'log' || (k === 'option' && (a === 'tcplog' || a === 'dontlognull' || a === 'httplog'))) {
    return 'l4lb writes its own access log (log.access), JSON lines on stderr or to a file';
  }
  return `"${l.words.slice(0, k === 'option' ? 2 : 1).join(' ')}" has no l4lb equivalent`;
}

function globalSection(b: Block, result: Converted, top: Notes): void {
  for (const l of b.body) {
    const [k, v] = l.words;
    if (k === 'maxconn' && /^\d+$/.test(v ?? '')) result.top.maxConnections = Number(v);
    else if (k === 'nbthread' && /^\d+$/.test(v ?? '')) {
      result.top.workers = Number(v);
      top.note(l.n, l.text, 'threads become worker processes (workers); one process per core is l4lb\'s way');
    } else if (k === 'daemon' || k === 'master-worker') top.drop(l.n, l.text, 'l4lb runs in the foreground; let systemd or your supervisor run it (docs/deployment.md)');
    else if (k === 'log' || k === 'log-send-hostname' || k === 'log-tag') top.drop(l.n, l.text, 'l4lb logs JSON lines on stderr; its access log goes to log.access');
    else if (k === 'stats') top.drop(l.n, l.text, 'no stats socket: use the admin API and /metrics (admin.listen)');
    else if (k === 'user' || k === 'group' || k === 'uid' || k === 'gid' || k === 'chroot') top.drop(l.n, l.text, 'l4lb does not change user or root; run it as the user you want (systemd User=)');
    else if (k === 'pidfile') top.drop(l.n, l.text, 'no pid file: a supervisor tracks the process');
    else top.drop(l.n, l.text, 'a process setting with no l4lb equivalent');
  }
}

interface PoolResult {
  section: Section;
  /** Listener settings that HAProxy keeps on the backend side. */
  timeouts: Record<string, string>;
  retries: number | undefined;
  /** Notes about those settings, added once the pool is used. */
}

/** `timeout X` lines of a section, with the defaults' under them. */
function timeoutLines(b: Block, d: Defaults): Map<string, Line> {
  const out = new Map<string, Line>();
  for (const l of [...d.lines, ...b.body]) if (l.words[0] === 'timeout' && l.words[1] !== undefined) out.set(l.words[1], l);
  return out;
}

function convertBackend(b: Block, d: Defaults): PoolResult {
  const notes = new Notes();
  const pool: Record<string, unknown> = { name: b.name };
  const lines = [...d.lines.filter((l) => INHERITED.has(l.words[0])), ...b.body];
  const defaultServer: string[] = [];
  const checks: { send?: string; sendHex?: string; expect?: string; expectRegex?: string; expectHex?: string } = {};
  let checkKind: 'tcp' | 'tcp-check' | undefined;
  let hashConsistent = false;
  let balance: { name: string; line: Line } | undefined;
  let retries: number | undefined;
  const servers: Line[] = [];
  const fromDefaults = new Set(d.lines);
  for (const l of lines) {
    const [k, ...a] = l.words;
    const inherited = fromDefaults.has(l);
    switch (k) {
      case 'mode':
      case 'timeout':
        break;
      case 'balance':
        balance = { name: a.join(' '), line: l };
        break;
      case 'hash-type':
        hashConsistent = a[0] === 'consistent';
        break;
      case 'server':
        servers.push(l);
        break;
      case 'default-server':
        defaultServer.push(...a);
        break;
      case 'retries':
        retries = Number(a[0]);
        if (!inherited) notes.note(l.n, l.text, "HAProxy retries the same server; l4lb's retries try other backends (listener retries)");
        break;
      case 'option':
        if (a[0] === 'tcp-check') checkKind = 'tcp-check';
        else if (a[0] === 'redis-check') {
          checkKind = 'tcp-check';
          checks.send = 'PING\r\n';
          checks.expect = '+PONG';
          notes.note(l.n, l.text, 'as a send-expect check: PING, expect +PONG');
        } else if (a[0] === 'redispatch') notes.note(l.n, l.text, 'l4lb always tries another backend after a failed connect (retries)');
        else if (a[0] === 'tcplog' || a[0] === 'dontlognull' || a[0] === 'log-health-checks') {
          if (!inherited) notes.drop(l.n, l.text, 'l4lb writes its own access log (log.access) and logs health changes');
        } else if (a[0] === 'httpchk' || a[0] === 'ssl-hello-chk' || a[0] === 'mysql-check' || a[0] === 'pgsql-check' || a[0] === 'smtpchk' || a[0] === 'ldap-check') {
          notes.drop(l.n, l.text, `l4lb has tcp and send-expect checks only; a tcp check is used instead of ${a[0]}`);
          checkKind ??= 'tcp';
        } else if (!inherited) notes.drop(l.n, l.text, `option ${a[0]} has no l4lb equivalent`);
        break;
      case 'tcp-check':
        tcpCheck(l, a, checks, notes);
        checkKind = 'tcp-check';
        break;
      case 'log':
        if (!inherited) notes.drop(l.n, l.text, 'l4lb logs JSON lines on stderr; its access log goes to log.access');
        break;
      case 'maxconn':
      case 'bind':
      case 'default_backend':
      case 'use_backend':
      case 'acl':
      case 'tcp-request':
        if (b.kind === 'backend') notes.drop(l.n, l.text, `"${k}" belongs in a frontend`);
        break;
      case 'fullconn':
        notes.drop(l.n, l.text, 'l4lb has no dynamic maxconn; set maxConnections on each backend');
        break;
      default:
        if (!inherited) notes.drop(l.n, l.text, `"${k}" has no l4lb equivalent`);
    }
  }

  const backends: Record<string, unknown>[] = [];
  let anyChecked = false;
  const checkParams: { inter?: string; rise?: number; fall?: number } = {};
  const proxyProtocols = new Set<string>();
  let slowStart: string | undefined;
  const tls: Record<string, unknown> = {};
  for (const l of servers) {
    const [, name, addr, ...rest] = l.words;
    const address = addr !== undefined ? serverAddress(addr) : undefined;
    if (name === undefined || address === undefined) {
      notes.drop(l.n, l.text, 'a server needs a name and an address with a port (HOST:PORT); this one was left out');
      continue;
    }
    const be: Record<string, unknown> = { name, address };
    const params = [...defaultServer, ...rest];
    let checked = false;
    let sendProxy: string | undefined;
    for (let i = 0; i < params.length; i++) {
      const p = params[i];
      const v = params[i + 1];
      const takeValue = (): string => {
        i++;
        return v ?? '';
      };
      switch (p) {
        case 'check':
          checked = true;
          break;
        case 'no-check':
          checked = false;
          break;
        case 'inter': {
          const t = durationOf(takeValue(), 'ms');
          checkParams.inter ??= t;
          break;
        }
        case 'rise': {
          const r = Number(takeValue());
          checkParams.rise ??= r;
          break;
        }
        case 'fall': {
          const f = Number(takeValue());
          checkParams.fall ??= f;
          break;
        }
        case 'weight':
          be.weight = Number(takeValue());
          break;
        case 'backup':
          be.backup = true;
          break;
        case 'disabled':
          be.state = 'disabled';
          break;
        case 'maxconn':
          be.maxConnections = Number(takeValue());
          break;
        case 'send-proxy':
          sendProxy = 'v1';
          break;
        case 'send-proxy-v2':
          sendProxy = 'v2';
          break;
        case 'slowstart': {
          const t = durationOf(takeValue(), 'ms');
          slowStart ??= t;
          break;
        }
        case 'ssl':
          tls.enabled = true;
          break;
        case 'verify':
          if (takeValue() === 'none') tls.insecureSkipVerify = true;
          break;
        case 'ca-file':
          tls.ca = takeValue();
          break;
        case 'sni':
          takeValue();
          notes.drop(l.n, l.text, 'sni takes an expression in HAProxy; set tls.servername to a fixed name');
          break;
        default: {
          const takes = SERVER_PARAMS_WITH_VALUE.has(p);
          const value = takes ? takeValue() : undefined;
          if (!rest.includes(p)) break; // from default-server: reported there once
          notes.drop(l.n, `${p}${value !== undefined ? ` ${value}` : ''}`, `server ${name}: "${p}" has no l4lb equivalent`);
        }
      }
    }
    if (sendProxy !== undefined) proxyProtocols.add(sendProxy);
    else proxyProtocols.add('none');
    if (checked) anyChecked = true;
    else be.check = false;
    backends.push(be);
  }
  if (proxyProtocols.size > 1) {
    notes.drop(b.line, b.text, 'send-proxy on some servers only: l4lb sends PROXY headers per pool; none is sent');
  } else if (proxyProtocols.has('v1') || proxyProtocols.has('v2')) pool.proxyProtocol = [...proxyProtocols][0];

  if (balance !== undefined) {
    const name = balance.name.replace(/\(.*\)$/, '').trim();
    const foreign = FOREIGN_BALANCER_NAMES[name];
    if (name === 'random' && /\(\s*2\s*\)/.test(balance.name)) pool.balance = 'power-of-two-choices';
    else if (name === 'random') pool.balance = 'random';
    else if (name === 'source' && hashConsistent) pool.balance = 'maglev';
    else if (foreign?.name !== undefined) pool.balance = foreign.name;
    else notes.drop(balance.line.n, balance.line.text, foreign?.why ?? `balance ${name} works on HTTP or is not available in l4lb; round robin is used`);
  }
  // HAProxy's default is roundrobin, which honours weights; l4lb's round-robin ignores them, so
  // it is chosen only when every weight is the same (and reads simpler).
  const weighted = backends.some((x) => (x.weight ?? 1) !== (backends[0].weight ?? 1));
  pool.balance ??= 'weighted-round-robin';
  if (pool.balance === 'weighted-round-robin' && !weighted) pool.balance = 'round-robin';
  if (slowStart !== undefined) pool.slowStart = slowStart;
  if (Object.keys(tls).length > 0) pool.tls = tls;

  if (anyChecked) {
    const hc: Record<string, unknown> = {};
    if (checkKind === 'tcp-check' && Object.keys(checks).length > 0) Object.assign(hc, checks);
    else hc.type = 'tcp';
    hc.interval = checkParams.inter ?? HAPROXY_INTER;
    hc.rise = checkParams.rise ?? HAPROXY_RISE;
    hc.fall = checkParams.fall ?? HAPROXY_FALL;
    // l4lb's default timeout (1s) would exceed a short interval.
    const interval = durationMs(String(hc.interval));
    const timeout = timeoutLines(b, { mode: d.mode, lines: d.lines }).get('check');
    const t = timeout ? durationOf(timeout.words[2] ?? '', 'ms') : undefined;
    if (t !== undefined && durationMs(t) <= interval) hc.timeout = t;
    else if (interval < 1000) hc.timeout = `${interval}ms`;
    pool.healthCheck = hc;
  } else if (checkKind !== undefined) {
    notes.note(b.line, b.text, 'check settings without any server marked "check": no active check, as in HAProxy');
  }
  // HAProxy has no passive ejection unless asked for (observe layer4); l4lb's is on by default.
  pool.passive = { consecutiveFailures: 0 };
  notes.note(b.line, b.text, 'passive ejection turned off to match HAProxy (l4lb turns it on by default: docs/health.md)');
  pool.backends = backends;
  if (backends.length === 0) notes.drop(b.line, b.text, 'no usable server: the pool is empty and l4lb check will refuse it');

  const timeouts: Record<string, string> = {};
  const tl = timeoutLines(b, d);
  const connect = tl.get('connect');
  if (connect) timeouts.connect = durationOf(connect.words[2] ?? '', 'ms') ?? '';
  const server = tl.get('server');
  const tunnel = tl.get('tunnel');
  if (tunnel) timeouts.idle = durationOf(tunnel.words[2] ?? '', 'ms') ?? '';
  else if (server) timeouts.idle = durationOf(server.words[2] ?? '', 'ms') ?? '';
  const serverFin = tl.get('server-fin');
  if (serverFin) timeouts.serverFin = durationOf(serverFin.words[2] ?? '', 'ms') ?? '';
  return { section: { value: pool, notes: notes.list }, timeouts, retries };
}

/** Lines of a `defaults` section that a backend takes over. */
const INHERITED = new Set(['balance', 'hash-type', 'retries', 'option', 'default-server', 'log', 'tcp-check']);

/** Server keywords followed by a value. */
const SERVER_PARAMS_WITH_VALUE = new Set([
  'inter', 'fastinter', 'downinter', 'rise', 'fall', 'weight', 'maxconn', 'maxqueue', 'port', 'addr', 'id', 'cookie', 'resolvers',
  'resolve-prefer', 'init-addr', 'on-error', 'on-marked-down', 'on-marked-up', 'error-limit', 'observe', 'slowstart', 'source',
  'check-sni', 'alpn', 'crt', 'ca-file', 'crl-file', 'verify', 'sni', 'proto', 'pool-max-conn', 'pool-purge-delay', 'max-reuse',
  'agent-port', 'agent-inter', 'agent-send', 'agent-addr', 'tcp-ut', 'namespace', 'ws', 'log-proto', 'track', 'redir', 'ciphers',
  'ssl-min-ver', 'ssl-max-ver', 'shard', 'hash-key', 'health-check-addr', 'check-proto', 'check-alpn',
]);

function tcpCheck(l: Line, a: string[], checks: Record<string, string>, notes: Notes): void {
  const [verb, ...rest] = a;
  if (verb === 'connect') {
    if (rest.length > 0) notes.drop(l.n, l.text, 'l4lb checks connect to the backend address as configured');
    return;
  }
  const once = (key: string, value: string): void => {
    if (checks.send !== undefined && key.startsWith('send') || checks.sendHex !== undefined && key.startsWith('send')
      || (key.startsWith('expect') && (checks.expect ?? checks.expectRegex ?? checks.expectHex) !== undefined)) {
      notes.drop(l.n, l.text, 'an l4lb check sends once and expects once; later steps are left out');
      return;
    }
    checks[key] = value;
  };
  if (verb === 'send' && rest[0] !== undefined) once('send', rest[0]);
  else if (verb === 'send-binary' && rest[0] !== undefined) once('sendHex', rest[0]);
  else if (verb === 'expect') {
    const negate = rest[0] === '!';
    const [kind, value] = negate ? rest.slice(1) : rest;
    if (negate || value === undefined) notes.drop(l.n, l.text, 'l4lb expects what a healthy backend says, not what it must not say');
    else if (kind === 'string') once('expect', value);
    else if (kind === 'rstring') once('expectRegex', value);
    else if (kind === 'binary') once('expectHex', value);
    else notes.drop(l.n, l.text, `expect ${kind} has no l4lb equivalent`);
  } else if (verb === 'comment') return;
  else notes.drop(l.n, l.text, `tcp-check ${verb} has no l4lb equivalent`);
}

function convertFrontend(b: Block, d: Defaults, pools: Map<string, PoolResult>, ownPool: string | undefined): Section[] {
  const notes = new Notes();
  const binds: Array<{ address: string; line: Line; acceptProxy: boolean }> = [];
  const acls = new Map<string, string[]>();
  const rules: Array<{ action: 'allow' | 'deny'; cidrs: string[] } | { default: 'deny' | 'allow' }> = [];
  let pool = ownPool;
  let maxconn: number | undefined;
  const lines = [...d.lines.filter((l) => l.words[0] === 'maxconn' || l.words[0] === 'timeout'), ...b.body];
  // A listen section's backend lines were converted with the pool; skip them here.
  const backendOnly = ownPool !== undefined ? new Set(['server', 'balance', 'default-server', 'option', 'tcp-check', 'hash-type', 'retries', 'fullconn', 'log']) : new Set<string>();
  for (const l of lines) {
    const [k, ...a] = l.words;
    if (backendOnly.has(k)) continue;
    switch (k) {
      case 'mode':
      case 'timeout':
        break;
      case 'bind': {
        for (const addr of (a[0] ?? '').split(',')) {
          const r = listenAddress(addr);
          if (typeof r !== 'string') {
            notes.drop(l.n, l.text, `bind ${addr}: ${r.error}`);
            continue;
          }
          binds.push({ address: r, line: l, acceptProxy: a.includes('accept-proxy') });
        }
        const opts = a.slice(1).filter((o) => o !== 'accept-proxy');
        if (opts.includes('ssl') || opts.includes('crt')) {
          notes.drop(l.n, l.text, 'TLS termination: l4lb takes a cert and a key file: write tls: { mode: terminate, certificates: [{ cert, key }] } by hand');
        } else if (opts.length > 0) notes.drop(l.n, l.text, `bind options ${opts.join(' ')} have no l4lb equivalent`);
        break;
      }
      case 'default_backend':
      case 'use_backend':
        if (a.length > 1) notes.drop(l.n, l.text, 'conditional use_backend: l4lb routes by TLS SNI/ALPN only (routes); write them by hand');
        else pool = a[0];
        break;
      case 'maxconn':
        maxconn = Number(a[0]);
        break;
      case 'acl':
        if (a[1] === 'src') acls.set(a[0], [...(acls.get(a[0]) ?? []), ...a.slice(2)]);
        else notes.drop(l.n, l.text, `acl on "${a[1]}": l4lb's ACLs match the client address (src) only`);
        break;
      case 'tcp-request':
        tcpRequest(l, a, acls, rules, notes);
        break;
      case 'log':
        notes.drop(l.n, l.text, 'l4lb logs JSON lines on stderr; its access log goes to log.access');
        break;
      case 'option':
        if (a[0] === 'tcplog' || a[0] === 'dontlognull') notes.drop(l.n, l.text, 'l4lb writes its own access log (log.access)');
        else notes.drop(l.n, l.text, `option ${a[0]} has no l4lb equivalent`);
        break;
      default:
        notes.drop(l.n, l.text, `"${k}" has no l4lb equivalent`);
    }
  }
  if (pool === undefined) {
    notes.drop(b.line, b.text, 'no default_backend: a listener needs a pool; this one was left out');
    return [];
  }
  const p = pools.get(pool);
  if (p === undefined) {
    notes.drop(b.line, b.text, `backend "${pool}" was not converted (missing, or not mode tcp); this listener was left out`);
    return [];
  }
  const tl = timeoutLines(b, d);
  const timeouts: Record<string, string> = { ...p.timeouts };
  const client = tl.get('client');
  if (client && !tl.get('tunnel')) {
    const c = durationOf(client.words[2] ?? '', 'ms');
    if (c !== undefined) {
      const prev = timeouts.idle;
      if (prev === undefined || durationMs(c) > durationMs(prev)) timeouts.idle = c;
      if (prev !== undefined && prev !== c) {
        notes.note(client.n, client.text, `l4lb has one idle timeout for both sides: the larger of timeout client and timeout server (${timeouts.idle})`);
      }
    }
  }
  const clientFin = tl.get('client-fin');
  if (clientFin) timeouts.clientFin = durationOf(clientFin.words[2] ?? '', 'ms') ?? '';
  const acl: Record<string, unknown>[] = [];
  let aclDefault: string | undefined;
  for (const r of rules) {
    if ('default' in r) {
      aclDefault = r.default;
      break;
    }
    acl.push({ [r.action]: r.cidrs.length === 1 ? r.cidrs[0] : r.cidrs });
  }
  const out: Section[] = [];
  binds.forEach((bind, i) => {
    const v: Record<string, unknown> = {
      name: binds.length > 1 ? `${b.name}-${i + 1}` : b.name,
      listen: bind.address,
      pool,
    };
    if (Object.keys(timeouts).length > 0) v.timeouts = timeouts;
    if (p.retries !== undefined) v.retries = p.retries;
    if (maxconn !== undefined) v.maxConnections = maxconn;
    if (acl.length > 0) v.acl = acl;
    if (aclDefault !== undefined) v.aclDefault = aclDefault;
    if (bind.acceptProxy) {
      v.acceptProxy = { trusted: ['0.0.0.0/0', '::/0'] };
      notes.note(bind.line.n, bind.line.text, 'accept-proxy trusts every source, as HAProxy does; narrow acceptProxy.trusted to your front proxies');
    }
    out.push({ value: v, notes: i === 0 ? notes.list : [] });
  });
  if (binds.length === 0) notes.drop(b.line, b.text, 'no usable bind: this listener was left out');
  return out;
}

/** `tcp-request connection accept|reject [if|unless COND]` where COND names src ACLs or `{ src … }`. */
function tcpRequest(
  l: Line,
  a: string[],
  acls: Map<string, string[]>,
  rules: Array<{ action: 'allow' | 'deny'; cidrs: string[] } | { default: 'deny' | 'allow' }>,
  notes: Notes,
): void {
  const [stage, action, cond, ...terms] = a;
  if (stage !== 'connection' || (action !== 'accept' && action !== 'reject')) {
    if (stage === 'inspect-delay' || stage === 'content') {
      notes.drop(l.n, l.text, 'l4lb reads the TLS ClientHello itself when a listener has routes (tls: passthrough); no inspect rules');
    } else notes.drop(l.n, l.text, `tcp-request ${stage} ${action ?? ''}: only "connection accept|reject" on src ACLs is converted`);
    return;
  }
  if (cond === undefined) {
    rules.push({ default: action === 'accept' ? 'allow' : 'deny' });
    return;
  }
  if (cond !== 'if' && cond !== 'unless') {
    notes.drop(l.n, l.text, `unexpected "${cond}"`);
    return;
  }
  let negate = cond === 'unless';
  const cidrs: string[] = [];
  let ok = true;
  const t = [...terms];
  if (t[0] === '!') {
    negate = !negate;
    t.shift();
  } else if (t[0]?.startsWith('!')) {
    negate = !negate;
    t[0] = t[0].slice(1);
  }
  if (t[0] === '{' && t[1] === 'src' && t[t.length - 1] === '}') cidrs.push(...t.slice(2, -1));
  else if (t.length === 1 && acls.has(t[0])) cidrs.push(...acls.get(t[0])!);
  else ok = false;
  if (!ok || cidrs.length === 0 || cidrs.some((c) => cidrError(c) !== undefined)) {
    notes.drop(l.n, l.text, 'only a single src ACL (or { src CIDR… }), possibly negated, is converted');
    return;
  }
  const allow = (action === 'accept') !== negate;
  rules.push({ action: allow ? 'allow' : 'deny', cidrs });
  // "reject if !trusted": everything outside `trusted` is refused, so nothing after it matters.
  if (negate) rules.push({ default: action === 'accept' ? 'allow' : 'deny' });
}
