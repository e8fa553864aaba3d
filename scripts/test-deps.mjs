// The Debian packages the tests (and, with --bench, the benchmark) run against, in one list that
// `npm test` and .ci/run both use. Checks that each is present before anything runs; as root
// with apt-get, installs what is missing (once: the next run finds it); otherwise stops at once
// with one line naming the packages and the command that installs them.
//
// Usage: node scripts/test-deps.mjs [--bench] [--check]
//   --bench  also the benchmark's packages (iperf3, wrk, taskset)
//   --check  report only, never install
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/**
 * What must be found, and the package that brings it. `file`: a fixed path (the tests use it);
 * `command`: looked up on PATH, then in the sbin directories a non-root PATH often lacks.
 */
const DEPENDENCIES = [
  { command: 'haproxy', package: 'haproxy' }, // HAProxy as a PROXY-protocol peer and in the convert tests
  { command: 'nginx', package: 'nginx' }, // nginx as a peer and in the convert tests
  { file: '/usr/lib/nginx/modules/ngx_stream_module.so', package: 'libnginx-mod-stream' }, // nginx's stream module
  { command: 'dnsmasq', package: 'dnsmasq-base' }, // a real DNS server for discovery tests
  { command: 'dig', package: 'bind9-dnsutils' }, // DNS queries in discovery tests
  { command: 'openssl', package: 'openssl' }, // certificates and a TLS peer
  { command: 'chromium', package: 'chromium' }, // the dashboard in a real browser
  { command: 'redis-server', package: 'redis-server' }, // the shared store for source limits
  { command: 'python3', package: 'python3' }, // a backend whose accept queue fills
  { command: 'prlimit', package: 'util-linux' }, // file-descriptor limits in fault tests
  { command: 'ip', package: 'iproute2' }, // network namespaces
  { command: 'iperf3', package: 'iperf3', bench: true }, // benchmark traffic
  { command: 'wrk', package: 'wrk', bench: true }, // benchmark traffic
  { command: 'taskset', package: 'util-linux', bench: true }, // benchmark CPU pinning
];

const SBIN_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

function executable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(command, extra = []) {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean).concat(extra);
  return dirs.some((d) => executable(join(d, command)));
}

function present(dep) {
  if (dep.file !== undefined) {
    try {
      accessSync(dep.file, constants.R_OK);
      return true;
    } catch {
      return false;
    }
  }
  return onPath(dep.command, SBIN_DIRS);
}

/** The packages missing for this run, each once, in list order. */
function missingPackages(withBench) {
  const wanted = DEPENDENCIES.filter((d) => withBench || !d.bench);
  return [...new Set(wanted.filter((d) => !present(d)).map((d) => d.package))];
}

function installCommand(packages) {
  return `apt-get install -y --no-install-recommends ${packages.join(' ')}`;
}

function main() {
  const args = process.argv.slice(2);
  const withBench = args.includes('--bench');
  const checkOnly = args.includes('--check');
  let missing = missingPackages(withBench);
  if (missing.length === 0) return 0;

  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  const canInstall = !checkOnly && root && onPath('apt-get', SBIN_DIRS);
  if (canInstall) {
    process.stderr.write(`test-deps: installing missing Debian packages: ${missing.join(' ')}\n`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const update = spawnSync('apt-get', ['update', '-qq'], { stdio: ['ignore', 'ignore', 'inherit'], env });
    const install = update.status === 0
      ? spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { stdio: ['ignore', 'ignore', 'inherit'], env })
      : update;
    missing = missingPackages(withBench);
    if (install.status === 0 && missing.length === 0) return 0;
  }
  const sudo = root ? '' : 'sudo ';
  process.stderr.write(
    `${withBench ? 'the tests and benchmark need' : 'npm test needs'} Debian packages that are missing: ${missing.join(' ')}; install them with: ${sudo}apt-get update && ${sudo}${installCommand(missing)}\n`,
  );
  return 1;
}

process.exitCode = main();
