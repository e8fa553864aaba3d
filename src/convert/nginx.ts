/**
 * @module convert/nginx — an nginx `stream` configuration (upstreams and servers) as an l4lb
 * config. What has no l4lb equivalent becomes a note saying why; `http` is out of scope.
 */
import { cidrError } from '../config/schema.js';
import { ConvertSyntaxError, Notes, durationOf, type Converted, type Section } from './model.js';

/** One directive: `name args;` or `name args { children }`. */
interface Directive {
  name: string;
  args: string[];
  line: number;
  text: string;
  children?: Directive[];
}

/** nginx's defaults for an upstream server: one failure takes it out for 10 s. */
const NGINX_MAX_FAILS = 1;
const NGINX_FAIL_TIMEOUT = '10s';
/** nginx's proxy_connect_timeout and proxy_timeout defaults. */
const NGINX_CONNECT_TIMEOUT = '60s';
const NGINX_PROXY_TIMEOUT = '10m';

/** Parses nginx config syntax into directives. Throws ConvertSyntaxError with the line. */
export function parseNginx(text: string): Directive[] {
  let i = 0;
  let line = 1;
  const word = (): { w: string; line: number } | undefined => {
    for (;;) {
      while (i < text.length && /\s/.test(text[i])) {
        if (text[i] === '\n') line++;
        i++;
      }
      if (text[i] === '#') {
        while (i < text.length && text[i] !== '\n') i++;
        continue;
      }
      break;
    }
    if (i >= text.length) return undefined;
    const at = line;
    const c = text[i];
    if (c === '{' || c === '}' || c === ';') {
      i++;
      return { w: c, line: at };
    }
    let w = '';
    if (c === '"' || c === "'") {
      i++;
      while (i < text.length && text[i] !== c) {
        if (text[i] === '\\' && i + 1 < text.length) i++;
        if (text[i] === '\n') line++;
        w += text[i++];
      }
      if (i >= text.length) throw new ConvertSyntaxError(at, `unterminated ${c} quote`);
      i++;
      return { w: `\u0000${w}`, line: at };
    }
    while (i < text.length && !/[\s;{}#]/.test(text[i])) w += text[i++];
    return { w, line: at };
  };
  const lines = text.split(/\r?\n/);
  const block = (depth: number): Directive[] => {
    const out: Directive[] = [];
    for (;;) {
      const first = word();
      if (first === undefined) {
        if (depth > 0) throw new ConvertSyntaxError(line, 'unexpected end of file: a "}" is missing');
        return out;
      }
      if (first.w === '}') {
        if (depth === 0) throw new ConvertSyntaxError(first.line, 'unexpected "}"');
        return out;
      }
      if (first.w === ';' || first.w === '{') throw new ConvertSyntaxError(first.line, `unexpected "${first.w}"`);
      const args: string[] = [];
      for (;;) {
        const t = word();
        if (t === undefined) throw new ConvertSyntaxError(first.line, `"${first.w}" is not terminated by ";"`);
        if (t.w === ';') {
          out.push({ name: first.w, args: args.map(unquote), line: first.line, text: (lines[first.line - 1] ?? '').trim() });
          break;
        }
        if (t.w === '{') {
          const children = block(depth + 1);
          out.push({ name: first.w, args: args.map(unquote), line: first.line, text: (lines[first.line - 1] ?? '').trim(), children });
          break;
        }
        if (t.w === '}') throw new ConvertSyntaxError(first.line, `"${first.w}" is not terminated by ";"`);
        args.push(t.w);
      }
    }
  };
  return block(0);
}

function unquote(w: string): string {
  return w.startsWith('\u0000') ? w.slice(1) : w;
}

/** `80`, `*:80`, `0.0.0.0:80`, `[::]:80`, `127.0.0.1:80` → l4lb's listen form. */
function listenAddress(s: string): string | undefined {
  if (/^\d+$/.test(s)) return `:${s}`;
  const m = /^(\*|\[[^\]]+\]|[^:]+):(\d+)$/.exec(s);
  if (m === null) return undefined;
  if (m[1] === '*' || m[1] === '[::]') return `:${m[2]}`;
  return `${m[1]}:${m[2]}`;
}

interface UpstreamResult {
  section: Section;
}

/** Converts nginx config text (a whole nginx.conf, or the inside of a `stream` block). */
export function convertNginx(text: string): Converted {
  const top = parseNginx(text);
  const result: Converted = { source: 'nginx', top: {}, listeners: [], pools: [], notes: [] };
  const notes = new Notes();
  let stream: Directive[] | undefined;
  const streams = top.filter((d) => d.name === 'stream');
  if (streams.length > 0) stream = streams.flatMap((d) => d.children ?? []);
  else if (top.some((d) => d.name === 'upstream' || d.name === 'server')) stream = top;
  if (stream === undefined) throw new ConvertSyntaxError(1, 'no stream { } block, upstream or server: nothing to convert');
  for (const d of top) {
    if (stream === top) break;
    switch (d.name) {
      case 'stream':
        break;
      case 'http':
        notes.drop(d.line, d.text, 'HTTP is out of scope for l4lb (a TCP proxy); the http block was not converted');
        break;
      case 'worker_processes':
        if (/^\d+$/.test(d.args[0] ?? '') || d.args[0] === 'auto') {
          result.top.workers = d.args[0] === 'auto' ? 'auto' : Number(d.args[0]);
        } else notes.drop(d.line, d.text, 'not a number or auto');
        break;
      case 'load_module':
        break; // nginx's way to get the stream module; nothing to carry over
      case 'events':
        for (const e of d.children ?? []) {
          notes.drop(e.line, e.text, e.name === 'worker_connections'
            ? 'l4lb limits connections with maxConnections (process, listener or backend)'
            : 'an event-loop setting with no l4lb equivalent');
        }
        break;
      case 'error_log':
        notes.drop(d.line, d.text, 'l4lb logs JSON lines on stderr');
        break;
      case 'user':
      case 'pid':
      case 'daemon':
      case 'master_process':
        notes.drop(d.line, d.text, 'l4lb runs in the foreground as the user that starts it; let systemd or your supervisor handle that');
        break;
      default:
        notes.drop(d.line, d.text, `"${d.name}" has no l4lb equivalent`);
    }
  }

  const maps = new Map<string, Directive>();
  const upstreams = new Map<string, UpstreamResult>();
  const connZones = new Map<string, string>();
  const realIpFrom: string[] = [];
  for (const d of stream) {
    if (d.name === 'map' && d.args[1] !== undefined) maps.set(d.args[1], d);
    else if (d.name === 'limit_conn_zone') {
      const zone = d.args.find((a) => a.startsWith('zone='))?.slice(5).split(':')[0];
      if (zone !== undefined) connZones.set(zone, d.args[0]);
    } else if (d.name === 'set_real_ip_from' && d.args[0] !== undefined) realIpFrom.push(d.args[0]);
  }
  for (const d of stream) {
    if (d.name === 'upstream') {
      const u = convertUpstream(d);
      upstreams.set(d.args[0], u);
      result.pools.push(u.section);
    }
  }
  // stream-level settings that servers inherit.
  const inherited = stream.filter((d) => INHERITABLE.has(d.name));
  let serverIndex = 0;
  for (const d of stream) {
    switch (d.name) {
      case 'upstream':
      case 'map':
      case 'limit_conn_zone':
      case 'set_real_ip_from':
        break;
      case 'server':
        serverIndex++;
        result.listeners.push(...convertServer(d, inherited, { maps, upstreams, connZones, realIpFrom, result, serverIndex }));
        break;
      case 'log_format':
      case 'access_log':
      case 'error_log':
        notes.drop(d.line, d.text, 'l4lb writes its own access log (log.access), JSON lines');
        break;
      case 'resolver':
      case 'resolver_timeout':
        notes.drop(d.line, d.text, 'l4lb resolves backend names with the system resolver, or discovers them with a pool\'s dns section');
        break;
      default:
        if (!INHERITABLE.has(d.name)) notes.drop(d.line, d.text, `"${d.name}" has no l4lb equivalent`);
    }
  }
  result.notes.push(...notes.list);
  return result;
}

/** stream-level directives a server takes over unless it sets its own. */
const INHERITABLE = new Set(['proxy_timeout', 'proxy_connect_timeout', 'proxy_protocol', 'allow', 'deny', 'proxy_next_upstream', 'proxy_next_upstream_tries', 'limit_conn', 'ssl_preread']);

function convertUpstream(d: Directive): UpstreamResult {
  const notes = new Notes();
  const pool: Record<string, unknown> = { name: d.args[0] };
  const backends: Record<string, unknown>[] = [];
  const passive = new Set<string>();
  let slowStart: string | undefined;
  for (const c of d.children ?? []) {
    switch (c.name) {
      case 'server': {
        const [addr, ...params] = c.args;
        const address = addr !== undefined && /:\d+$/.test(addr) ? addr : undefined;
        if (address === undefined) {
          notes.drop(c.line, c.text, addr?.startsWith('unix:') ? 'l4lb connects over TCP only' : 'a server needs HOST:PORT; this one was left out');
          break;
        }
        const be: Record<string, unknown> = { address };
        let maxFails = String(NGINX_MAX_FAILS);
        let failTimeout = NGINX_FAIL_TIMEOUT;
        for (const p of params) {
          const [k, v = ''] = p.split('=');
          if (k === 'weight') be.weight = Number(v);
          else if (k === 'backup') be.backup = true;
          else if (k === 'down') be.state = 'disabled';
          else if (k === 'max_conns') be.maxConnections = Number(v);
          else if (k === 'max_fails') maxFails = v;
          else if (k === 'fail_timeout') failTimeout = durationOf(v, 's') ?? NGINX_FAIL_TIMEOUT;
          else if (k === 'slow_start') slowStart ??= durationOf(v, 's');
          else notes.drop(c.line, c.text, `server parameter "${k}" has no l4lb equivalent`);
        }
        passive.add(`${maxFails}|${failTimeout}`);
        backends.push(be);
        break;
      }
      case 'hash': {
        const key = c.args[0];
        const consistent = c.args[1] === 'consistent';
        if (key === '$remote_addr' || key === '$binary_remote_addr') pool.balance = consistent ? 'maglev' : 'source-ip-hash';
        else if (key === '$remote_addr$remote_port' || key === '$remote_addr:$remote_port') {
          pool.balance = consistent ? 'maglev' : 'source-ip-hash';
          pool.hashKey = 'source-ip-port';
        } else notes.drop(c.line, c.text, 'l4lb hashes the client address (hashKey: source-ip or source-ip-port) only');
        break;
      }
      case 'least_conn':
        pool.balance = 'least-connections';
        break;
      case 'random':
        if (c.args[0] === 'two') {
          pool.balance = 'power-of-two-choices';
          if (c.args[1] !== undefined && c.args[1] !== 'least_conn') notes.drop(c.line, c.text, `${c.args[1]}: l4lb compares active connections (as least_conn)`);
        } else pool.balance = 'random';
        break;
      case 'zone':
        break; // shared memory for nginx's workers; l4lb's workers share state without it
      default:
        notes.drop(c.line, c.text, `"${c.name}" has no l4lb equivalent`);
    }
  }
  // nginx's default is a smooth weighted round robin; l4lb's round-robin ignores weights.
  if (pool.balance === undefined) {
    const weighted = backends.some((b) => (b.weight ?? 1) !== (backends[0].weight ?? 1));
    pool.balance = weighted ? 'weighted-round-robin' : 'round-robin';
  }
  if (slowStart !== undefined) pool.slowStart = slowStart;
  const [only, ...others] = [...passive];
  if (only !== undefined) {
    const [maxFails, failTimeout] = only.split('|');
    // nginx takes a server out for fail_timeout after max_fails failures, every time.
    pool.passive = Number(maxFails) === 0
      ? { consecutiveFailures: 0 }
      : { consecutiveFailures: Number(maxFails), baseEjection: failTimeout, maxEjection: failTimeout };
    if (others.length > 0) notes.drop(d.line, d.text, 'max_fails/fail_timeout differ between servers: l4lb sets them per pool; the first server\'s are used');
    if (Number(maxFails) > 1) notes.note(d.line, d.text, 'nginx counts max_fails within fail_timeout; l4lb counts failures in a row');
  }
  pool.backends = backends;
  return { section: { value: pool, notes: notes.list } };
}

interface ServerContext {
  maps: Map<string, Directive>;
  upstreams: Map<string, UpstreamResult>;
  connZones: Map<string, string>;
  realIpFrom: string[];
  result: Converted;
  serverIndex: number;
}

function convertServer(d: Directive, inherited: Directive[], ctx: ServerContext): Section[] {
  const notes = new Notes();
  const own = d.children ?? [];
  const setHere = new Set(own.map((c) => c.name));
  const all = [...inherited.filter((c) => !setHere.has(c.name) || c.name === 'allow' || c.name === 'deny'), ...own];
  // allow/deny: the server's own list replaces the stream's when it has one.
  const ownAcl = own.some((c) => c.name === 'allow' || c.name === 'deny');
  const directives = all.filter((c) => !(ownAcl && inherited.includes(c) && (c.name === 'allow' || c.name === 'deny')));
  const listens: Array<{ address: string; proxyProtocol: boolean; ssl: boolean; line: Directive }> = [];
  const timeouts: Record<string, string> = {};
  const acl: Record<string, string>[] = [];
  let aclDefault: string | undefined;
  let passTo: { target: string; line: Directive } | undefined;
  let proxyProtocolOut = false;
  let retries: number | undefined;
  let prereadSni = false;
  let sourceMax: number | undefined;
  const certs: { cert?: string; key?: string } = {};
  for (const c of directives) {
    const a = c.args;
    switch (c.name) {
      case 'listen': {
        const address = listenAddress(a[0] ?? '');
        if (address === undefined) {
          notes.drop(c.line, c.text, a[0]?.startsWith('unix:') ? 'l4lb listens on TCP addresses only' : 'not an address l4lb can listen on');
          break;
        }
        if (a.includes('udp')) {
          notes.drop(c.line, c.text, 'UDP: l4lb proxies TCP only');
          break;
        }
        for (const opt of a.slice(1)) {
          if (opt !== 'proxy_protocol' && opt !== 'ssl' && opt !== 'reuseport' && opt !== 'default_server') {
            notes.drop(c.line, c.text, `listen parameter "${opt}" has no l4lb equivalent`);
          }
        }
        listens.push({ address, proxyProtocol: a.includes('proxy_protocol'), ssl: a.includes('ssl'), line: c });
        break;
      }
      case 'proxy_pass':
        passTo = { target: a[0] ?? '', line: c };
        break;
      case 'proxy_timeout':
        timeouts.idle = durationOf(a[0] ?? '', 's') ?? '';
        break;
      case 'proxy_connect_timeout':
        timeouts.connect = durationOf(a[0] ?? '', 's') ?? '';
        break;
      case 'proxy_protocol':
        proxyProtocolOut = a[0] === 'on';
        break;
      case 'proxy_next_upstream':
        if (a[0] === 'off') retries = 0;
        break;
      case 'proxy_next_upstream_tries':
        if (Number(a[0]) > 0) retries = Number(a[0]) - 1;
        break;
      case 'allow':
      case 'deny': {
        const what = a[0] ?? '';
        if (what === 'all') {
          aclDefault = c.name;
          break;
        }
        if (aclDefault !== undefined) {
          notes.drop(c.line, c.text, `after "${c.name === 'allow' ? 'deny' : 'allow'} all" nothing else matches (nginx checks in order)`);
          break;
        }
        if (cidrError(what) !== undefined) notes.drop(c.line, c.text, 'not an address or CIDR');
        else acl.push({ [c.name]: what });
        break;
      }
      case 'ssl_preread':
        prereadSni = a[0] === 'on';
        break;
      case 'ssl_certificate':
        certs.cert = a[0];
        break;
      case 'ssl_certificate_key':
        certs.key = a[0];
        break;
      case 'limit_conn': {
        const key = ctx.connZones.get(a[0] ?? '');
        if (key === '$binary_remote_addr' || key === '$remote_addr') sourceMax = Number(a[1]);
        else notes.drop(c.line, c.text, 'l4lb limits connections per client address (sourceLimits) only');
        break;
      }
      default:
        notes.drop(c.line, c.text, `"${c.name}" has no l4lb equivalent`);
    }
  }

  if (passTo === undefined) {
    notes.drop(d.line, d.text, 'no proxy_pass: this server was left out');
    ctx.result.notes.push(...notes.list);
    return [];
  }
  const value: Record<string, unknown> = {};
  let poolName: string | undefined;
  let routes: Record<string, unknown>[] | undefined;
  const target = passTo.target;
  if (target.startsWith('$')) {
    const map = ctx.maps.get(target);
    if (map === undefined || map.args[0] !== '$ssl_preread_server_name' || !prereadSni) {
      notes.drop(passTo.line.line, passTo.line.text, 'l4lb routes by the TLS server name only: a map of $ssl_preread_server_name with ssl_preread on');
      ctx.result.notes.push(...notes.list);
      return [];
    }
    const r = sniRoutes(map, ctx, notes);
    routes = r.routes;
    poolName = r.fallback;
  } else if (ctx.upstreams.has(target)) poolName = target;
  else if (/:\d+$/.test(target)) {
    // proxy_pass straight to an address: a pool of one.
    poolName = `server${ctx.serverIndex}`;
    ctx.result.pools.push({
      value: {
        name: poolName,
        balance: 'round-robin',
        passive: { consecutiveFailures: NGINX_MAX_FAILS, baseEjection: NGINX_FAIL_TIMEOUT, maxEjection: NGINX_FAIL_TIMEOUT },
        backends: [{ address: target }],
      },
      notes: [],
    });
  } else {
    notes.drop(passTo.line.line, passTo.line.text, `"${target}" is not an upstream of this file or HOST:PORT; this server was left out`);
    ctx.result.notes.push(...notes.list);
    return [];
  }
  if (proxyProtocolOut) {
    const pools = [...(poolName !== undefined ? [poolName] : []), ...(routes ?? []).map((r) => String(r.pool))];
    for (const name of pools) {
      const p = ctx.result.pools.find((s) => s.value.name === name);
      if (p) p.value.proxyProtocol = 'v1';
    }
  }
  timeouts.connect ??= NGINX_CONNECT_TIMEOUT;
  timeouts.idle ??= NGINX_PROXY_TIMEOUT;
  if (poolName !== undefined) value.pool = poolName;
  value.timeouts = timeouts;
  if (retries !== undefined) value.retries = retries;
  if (acl.length > 0) value.acl = acl;
  if (aclDefault !== undefined) value.aclDefault = aclDefault;
  if (sourceMax !== undefined) value.sourceLimits = { maxConnections: sourceMax };
  if (routes !== undefined) {
    value.tls = { mode: 'passthrough' };
    value.routes = routes;
  }
  const out: Section[] = [];
  listens.forEach((l, i) => {
    const v: Record<string, unknown> = { listen: l.address, ...value };
    if (l.proxyProtocol) {
      const trusted = ctx.realIpFrom.length > 0 ? ctx.realIpFrom : ['0.0.0.0/0', '::/0'];
      v.acceptProxy = { trusted };
      if (ctx.realIpFrom.length === 0) notes.note(l.line.line, l.line.text, 'PROXY headers are trusted from every source; narrow acceptProxy.trusted to your front proxies');
    }
    if (l.ssl) {
      if (certs.cert !== undefined && certs.key !== undefined && routes === undefined) {
        v.tls = { mode: 'terminate', certificates: [{ cert: certs.cert, key: certs.key }] };
      } else notes.drop(l.line.line, l.line.text, 'listen … ssl needs ssl_certificate and ssl_certificate_key (and no ssl_preread routes)');
    }
    out.push({ value: v, notes: i === 0 ? notes.list : [] });
  });
  if (listens.length === 0) {
    notes.drop(d.line, d.text, 'no usable listen: this server was left out');
    ctx.result.notes.push(...notes.list);
  }
  return out;
}

/** `map $ssl_preread_server_name $x { hostnames; a.example.com up_a; default up_b; }` → routes. */
function sniRoutes(map: Directive, ctx: ServerContext, notes: Notes): { routes: Record<string, unknown>[]; fallback: string | undefined } {
  const byPool = new Map<string, string[]>();
  let fallback: string | undefined;
  for (const e of map.children ?? []) {
    if (e.name === 'hostnames') continue;
    const pool = e.args[0];
    if (pool === undefined || !ctx.upstreams.has(pool)) {
      notes.drop(e.line, e.text, `"${pool ?? ''}" is not an upstream of this file`);
      continue;
    }
    if (e.name === 'default') fallback = pool;
    else if (e.name.startsWith('~')) notes.drop(e.line, e.text, 'regular expressions: l4lb matches exact names and *.wildcards');
    else if (e.name.startsWith('.') || e.name.startsWith('*.')) {
      notes.note(e.line, e.text, "l4lb's *.name matches exactly one label more (a.example.com, not a.b.example.com)");
      const base = e.name.slice(e.name.indexOf('.') + 1);
      byPool.set(pool, [...(byPool.get(pool) ?? []), ...(e.name.startsWith('.') ? [base] : []), `*.${base}`]);
    } else byPool.set(pool, [...(byPool.get(pool) ?? []), e.name]);
  }
  return { routes: [...byPool].map(([pool, serverNames]) => ({ serverNames, pool })), fallback };
}
