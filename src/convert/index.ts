/**
 * @module convert — `l4lb convert FILE`: an HAProxy or nginx stream configuration as l4lb YAML,
 * with a comment on every directive that could not be carried over and why.
 */
import { extname } from 'node:path';
import { convertHaproxy } from './haproxy.js';
import { convertNginx } from './nginx.js';
import { anythingDropped, toYaml, type Converted } from './model.js';

export { ConvertSyntaxError } from './model.js';
export type { Converted, Note } from './model.js';

/** The source formats `l4lb convert` reads. */
export type SourceFormat = 'haproxy' | 'nginx';

/** nginx syntax ends directives with `;` and opens blocks with `{`; HAProxy's does neither. */
export function detectFormat(text: string, file: string): SourceFormat {
  if (extname(file) === '.cfg') return 'haproxy';
  const code = text.split(/\r?\n/).map((l) => l.replace(/#.*$/, '').trim()).filter(Boolean);
  if (code.some((l) => /^(global|defaults|frontend|backend|listen)(\s|$)/.test(l) && !/[{;]\s*$/.test(l))) return 'haproxy';
  return 'nginx';
}

/** Converts config text; `dropped` is true when any directive's effect was lost. */
export function convertConfig(text: string, file: string, format: SourceFormat = detectFormat(text, file)): { yaml: string; dropped: boolean; converted: Converted } {
  const converted = format === 'haproxy' ? convertHaproxy(text) : convertNginx(text);
  return { yaml: toYaml(converted, file), dropped: anythingDropped(converted), converted };
}
