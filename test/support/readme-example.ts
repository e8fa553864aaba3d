/**
 * @module test/support/readme-example — runs the README's "As a library" example exactly as
 * written, against an installed `l4lb` package.
 *
 * The example reloads from `l4lb.yaml` right after printing the address it got on port 0.
 * That file is a named pipe here: the example's read waits until the test has seen the
 * bound port and written a config that names it — the case that used to fail.
 */
import { spawn, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync, constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT } from './net.js';

/** The first ```ts block after the README's "## As a library" heading. */
export function readmeLibraryExample(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## As a library'));
  const m = /```ts\n([\s\S]*?)```/.exec(section);
  if (!m) throw new Error('README.md: no ```ts block under "## As a library"');
  return m[1];
}

export interface ExampleRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The port the example's proxy bound (from its first output line). */
  port: number;
}

/**
 * Runs the example in `dir` (where `import 'l4lb'` must resolve), answering its
 * `loadConfigFile('l4lb.yaml')` with a config that names the bound port and sends to
 * `backendPort`.
 */
export async function runReadmeExample(dir: string, backendPort: number, timeoutMs = 30_000): Promise<ExampleRun> {
  writeFileSync(join(dir, 'example.mjs'), readmeLibraryExample());
  const fifo = join(dir, 'l4lb.yaml');
  execFileSync('mkfifo', [fifo]);
  const child = spawn(process.execPath, ['example.mjs'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = once(child, 'exit') as Promise<[number | null]>;
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
      const m = /127\.0\.0\.1:(\d+)/.exec(stdout);
      if (m) resolve(Number(m[1]));
    });
    void exited.then(([code]) => reject(new Error(`the example exited (${code}) before printing its address:\n${stderr}`)));
  });
  const yaml = [
    'listeners:',
    `  - listen: 127.0.0.1:${port}`,
    '    pool: app',
    'pools:',
    '  - name: app',
    '    backends:',
    `      - 127.0.0.1:${backendPort}`,
    '',
  ].join('\n');
  // If the example dies before reading, opening our own read end lets the write finish.
  const write = open(fifo, constants.O_WRONLY).then(async (fh) => {
    await fh.writeFile(yaml);
    await fh.close();
  });
  const [code] = await exited;
  clearTimeout(timer);
  const unblock = await open(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  await write;
  await unblock.close();
  return { code, stdout, stderr, port };
}

/** The JSON log lines of a run (stderr). */
export function logLines(stderr: string): Record<string, unknown>[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
