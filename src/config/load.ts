/**
 * @module config/load — read a config file (YAML or JSON), interpolate `${NAME}` from the
 * environment, validate it and resolve it into the {@link Config} the runtime runs on.
 *
 * Every problem is reported at once, in one {@link ConfigError}, each with the path inside
 * the document (`pools[1].backends[0].address`) and, for text input, the line it sits on.
 */
import { readFile, stat } from 'node:fs/promises';
import { dirname, extname, isAbsolute, resolve } from 'node:path';
import { CST, Composer, Lexer, LineCounter, Parser, YAMLParseError, isAlias, isMap, isScalar, isSeq, type Document, type DocumentOptions, type Node, type ParseOptions, type SchemaOptions } from 'yaml';
import { ConfigError, ErrorCodes, type ConfigIssue } from '../errors.js';
import type { Config } from './types.js';
import { findJsonSyntaxError } from './json-syntax.js';
import { checkConfigRules, formatPath, parseWithSchema, type PathSegment, type SchemaIssue } from './schema.js';

/** Options for text and object input. */
export interface NormalizeOptions {
  /**
   * Directory that relative file paths in the config (certificates, CA bundles, the access
   * log file) are resolved against. Files: the config file's directory. Objects: unset,
   * which leaves them relative to the working directory.
   */
  baseDir?: string;
  /**
   * Values set from outside the document (the CLI's flags), applied over it before it is
   * validated, so they get the same checks and messages as the file's own values. An issue
   * inside an override's path is reported under its `label` (`--admin`), without a line.
   */
  overrides?: ConfigOverride[];
}

/** One value set over the document: `path` inside it, the value, and how errors name it. */
export interface ConfigOverride {
  path: PathSegment[];
  value: unknown;
  label: string;
  /** Set only when the document has no value there (a default from the environment). */
  ifAbsent?: boolean;
}

/** Environment variables, as `process.env` holds them. */
export type Env = Record<string, string | undefined>;

/** Answers "which line is this path on?" for one parsed document. */
type LineOf = (path: readonly PathSegment[]) => number | undefined;

const noLines: LineOf = () => undefined;

/** Top-level keys with this prefix are ignored (as in docker-compose), to hold YAML anchors. */
const EXTENSION_PREFIX = 'x-';

/**
 * Largest config file read, bytes. A config with 200,000 backends is about 5 MB; the bound
 * keeps a wrong file (a log, a disk image) from being read and parsed whole.
 */
export const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

/**
 * Deepest nesting a config may have (flow brackets, indentation and compact `a: b:` / `- -`
 * forms together). Real configs nest about 8 deep. The YAML parser recurses per level and
 * slows down with the square of the depth, so 100,000 `[` would block the process for half a
 * minute before failing: deeper input is refused before it reaches the parser.
 */
export const MAX_CONFIG_DEPTH = 64;

/** Syntax errors reported at most (a binary file would otherwise produce thousands). */
const MAX_SYNTAX_ERRORS = 20;

/**
 * Reads, parses, validates and resolves a config file. `.json` files are parsed as JSON,
 * everything else as YAML. Throws {@link ConfigError}: CONFIG_READ when the file cannot be
 * read, CONFIG_PARSE on a syntax error, CONFIG_INVALID when the content is not a valid config.
 */
export async function loadConfigFile(path: string, env: Env = process.env, options: Pick<NormalizeOptions, 'overrides'> = {}): Promise<Config> {
  let text: string;
  try {
    const { size } = await stat(path);
    if (size > MAX_CONFIG_BYTES) throw new ConfigError(ErrorCodes.CONFIG_READ, path, [{ path: '', message: tooLarge(size) }]);
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(ErrorCodes.CONFIG_READ, path, [{ path: '', message: `cannot read the config file: ${readReason(err)}` }]);
  }
  return parseConfigText(text, path, env, { ...options, baseDir: dirname(resolve(path)) });
}

/**
 * Parses, validates and resolves config text. `file` names it in errors and picks the syntax
 * (`.json` → JSON, else YAML); relative paths in it are resolved against the file's directory
 * unless `options.baseDir` says otherwise.
 */
export function parseConfigText(text: string, file: string, env: Env = process.env, options: NormalizeOptions = {}): Config {
  const source = parseSource(text, file);
  const envIssues: SchemaIssue[] = [];
  const value = interpolateEnv(source.value, env, [], envIssues);
  const config = validate(value, file, source.lineOf, envIssues, { ...options, baseDir: options.baseDir ?? dirname(resolve(file)) });
  config.file = file;
  return config;
}

/**
 * Validates and resolves an already-parsed config object (the CLI builds one from its flags).
 * No `${NAME}` interpolation and no line numbers; `file` names the source in errors.
 */
export function normalizeConfig(raw: unknown, file: string, options: NormalizeOptions = {}): Config {
  return validate(raw, file, noLines, [], options);
}

function tooLarge(bytes: number): string {
  return `the config file is ${bytes} bytes; the most l4lb reads is ${MAX_CONFIG_BYTES} (${MAX_CONFIG_BYTES / 1024 / 1024} MiB)`;
}

function readReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'it is a directory';
    default:
      return err instanceof Error ? err.message : String(err);
  }
}

// ---------------------------------------------------------------------------------------------
// Syntax.

interface Source {
  value: unknown;
  lineOf: LineOf;
}

/**
 * The yaml parser's options, the same for YAML and for the JSON line map. merge: `<<: *defaults`
 * is how YAML users share blocks; logLevel keeps yaml from printing warnings to the process's
 * stderr.
 */
const YAML_OPTIONS: ParseOptions & DocumentOptions & SchemaOptions = { prettyErrors: false, merge: true, logLevel: 'error' };

/**
 * Parses YAML text into one document, as yaml's `parseDocument` does (lexer, CST parser,
 * composer), with l4lb's bounds applied on the way:
 * - the nesting depth is measured on the lexer's tokens before the parser takes each one
 *   ({@link DepthScan}), so the text is lexed once and the parser never sees a level past
 *   {@link MAX_CONFIG_DEPTH};
 * - a CST error token on a line that already has one, or past the {@link MAX_SYNTAX_ERRORS}th
 *   line with one, is not composed: only the first error of each line is reported, and at most
 *   that many lines, so the rest cannot be listed, yet each one costs the composer an Error
 *   (garbage has thousands on one line). The errors listed are the same as without this.
 * Throws {@link TooDeep} for a text nested too deeply.
 */
function yamlDocument(text: string): { doc: Document; lines: LineCounter } {
  const lines = new LineCounter();
  lines.addNewLine(0);
  const parser = new Parser(lines.addNewLine);
  const depth = new DepthScan();
  const tokens: CST.Token[] = [];
  const errorLines = new Set<number>();
  const keep = (t: CST.Token): void => {
    if (t.type === 'error') {
      const line = lines.linePos(t.offset).line;
      if (errorLines.has(line) || errorLines.size >= MAX_SYNTAX_ERRORS) return;
      errorLines.add(line);
    }
    tokens.push(t);
  };
  for (const lexeme of new Lexer().lex(text)) {
    const tooDeep = depth.add(lexeme);
    if (tooDeep !== undefined) throw new TooDeep(tooDeep);
    for (const t of parser.next(lexeme)) keep(t);
  }
  for (const t of parser.end()) keep(t);

  const composer = new Composer(YAML_OPTIONS);
  // As parseDocument: the first document; a second one is an error.
  let doc: Document | undefined;
  for (const d of composer.compose(tokens, true, text.length)) {
    if (doc === undefined) doc = d;
    else {
      doc.errors.push(new YAMLParseError([d.range[0], d.range[1]], 'MULTIPLE_DOCS', 'Source contains multiple documents; please use YAML.parseAllDocuments()'));
      break;
    }
  }
  return { doc: doc!, lines };
}

function parseSource(rawText: string, file: string): Source {
  // Editors on some systems write a byte-order mark; neither parser wants it.
  const text = rawText.startsWith('\uFEFF') ? rawText.slice(1) : rawText;
  if (text.length > MAX_CONFIG_BYTES) throw new ConfigError(ErrorCodes.CONFIG_PARSE, file, [{ path: '', message: tooLarge(Buffer.byteLength(text)) }]);
  // The yaml parser recurses per level of nesting: the depth is bounded before it parses
  // (as it lexes, in yamlDocument). JSON.parse does not recurse; a deep JSON text is refused
  // for its depth before its syntax is looked at, as a deep YAML text is.

  if (extname(file).toLowerCase() === '.json') {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      const tooDeep = nestingProblem(text);
      if (tooDeep !== undefined) throw new ConfigError(ErrorCodes.CONFIG_PARSE, file, [tooDeep]);
      // JSON.parse's own message changes between Node versions and may lack a position.
      const found = findJsonSyntaxError(text);
      if (found === undefined) {
        throw new ConfigError(ErrorCodes.CONFIG_PARSE, file, [{ path: '', message: `invalid JSON: ${(err as Error).message.split('\n')[0]}` }]);
      }
      const pos = lineCounterOf(text).linePos(found.offset);
      throw new ConfigError(ErrorCodes.CONFIG_PARSE, file, [
        { path: '', line: pos.line, message: `JSON syntax error at column ${pos.col}: ${found.message}` },
      ]);
    }
    // JSON is YAML, so the yaml parser maps paths to lines; only valid JSON gets that far,
    // and if the yaml parser disagrees, go without.
    const { doc, lines } = guardedYamlDocument(text, file);
    return { value, lineOf: doc.errors.length === 0 ? lineFinder(doc, (offset) => lines.linePos(offset).line) : noLines };
  }

  const { doc, lines } = guardedYamlDocument(text, file);
  const lineAt = (offset: number): number => lines.linePos(offset).line;

  if (doc.errors.length > 0) {
    const issues: ConfigIssue[] = [];
    const seenLines = new Set<number>();
    for (const e of doc.errors) {
      const pos = lines.linePos(e.pos[0]);
      // One mistake makes the parser stumble over the rest of its line: report the first.
      if (seenLines.has(pos.line)) continue;
      seenLines.add(pos.line);
      const firstLine = e.message.split('\n')[0];
      issues.push({ path: '', line: pos.line, message: `YAML syntax error at column ${pos.col}: ${firstLine}${flowHint(lineText(text, lines, pos.line))}` });
      if (issues.length === MAX_SYNTAX_ERRORS) break;
    }
    throw new ConfigError(ErrorCodes.CONFIG_PARSE, file, issues);
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    const why = err instanceof RangeError ? 'it is nested too deeply' : (err as Error).message;
    throw new ConfigError(ErrorCodes.CONFIG_PARSE, file, [{ path: '', message: `YAML error: ${why}` }]);
  }
  return { value, lineOf: lineFinder(doc, lineAt) };
}

/** The text of line `line` (1-based), without its line break. */
function lineText(text: string, lines: LineCounter, line: number): string | undefined {
  const start = lines.lineStarts[line - 1];
  if (start === undefined) return undefined;
  const end = lines.lineStarts[line] ?? text.length;
  return text.slice(start, end).replace(/\r?\n$/, '');
}

/**
 * {@link yamlDocument}, with its depth issue, or a parser failure (a stack overflow on a shape
 * the depth scan does not foresee), reported as a parse error of the file rather than escaping
 * as a crash.
 */
function guardedYamlDocument(text: string, file: string): { doc: Document; lines: LineCounter } {
  // The parser makes an Error per problem; garbage has thousands, and capturing each one's
  // stack trace took most of the time (16 KiB of them: 0.9 s with traces, 0.1 s without).
  const traces = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return yamlDocument(text);
  } catch (err) {
    if (err instanceof TooDeep) throw new ConfigError(ErrorCodes.CONFIG_PARSE, file, [err.issue]);
    const why = err instanceof RangeError ? 'it is nested too deeply for the YAML parser' : (err as Error).message;
    throw new ConfigError(ErrorCodes.CONFIG_PARSE, file, [{ path: '', message: `cannot parse the config: ${why}` }]);
  } finally {
    Error.stackTraceLimit = traces;
  }
}

/** Line positions of `text`, without parsing it. */
function lineCounterOf(text: string): LineCounter {
  const lines = new LineCounter();
  lines.addNewLine(0);
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lines.addNewLine(i + 1);
  return lines;
}

/** What {@link yamlDocument} throws for a text nested too deeply. */
class TooDeep {
  constructor(readonly issue: ConfigIssue) {}
}

/** Measures how deeply `text` nests ({@link DepthScan}) without parsing it. */
function nestingProblem(text: string): ConfigIssue | undefined {
  const depth = new DepthScan();
  for (const token of new Lexer().lex(text)) {
    const tooDeep = depth.add(token);
    if (tooDeep !== undefined) return tooDeep;
  }
  return undefined;
}

/**
 * Measures how deeply a text nests, token by token from yaml's lexer (linear: it only splits
 * tokens, it builds nothing), and says so as soon as the depth passes {@link MAX_CONFIG_DEPTH}.
 * Counted: open flow brackets (`[`, `{`); the compact indicators of one entry (`- - x`,
 * `a: b: c`, counted from the last line start, comma or bracket), each of which the parser
 * turns into one more level of recursion; and, outside brackets, the indentation levels open at
 * a line's first token.
 */
class DepthScan {
  #flow = 0;
  readonly #indents: number[] = [];
  #onLine = 0;
  #column = 0;
  #atLineStart = true;
  #line = 1;

  /** Takes the next token; returns the issue once the text is too deep. */
  add(token: string): ConfigIssue | undefined {
    const type = CST.tokenType(token);
    if (type === 'newline') {
      this.#line++;
      this.#column = 0;
      this.#onLine = 0;
      this.#atLineStart = true;
      return undefined;
    }
    if (type === 'space') {
      if (this.#atLineStart) this.#column += token.length;
      return undefined;
    }
    if (type === 'comment' || type === 'byte-order-mark' || type === 'doc-mode') return undefined;
    if (type === 'flow-seq-start' || type === 'flow-map-start') {
      this.#flow++;
      this.#onLine = 0;
    } else if (type === 'flow-seq-end' || type === 'flow-map-end') {
      if (this.#flow > 0) this.#flow--;
      this.#onLine = 0;
    } else if (type === 'comma') this.#onLine = 0;
    else if (type === 'seq-item-ind' || type === 'map-value-ind' || type === 'explicit-key-ind') this.#onLine++;
    const indents = this.#indents;
    if (this.#atLineStart && this.#flow === 0) {
      while (indents.length > 0 && indents[indents.length - 1] >= this.#column) indents.pop();
      indents.push(this.#column);
    }
    this.#atLineStart = false;
    // Multi-line scalars carry newlines of their own.
    for (let i = token.indexOf('\n'); i >= 0; i = token.indexOf('\n', i + 1)) this.#line++;
    const depth = this.#flow + this.#onLine + (this.#flow === 0 ? indents.length : 0);
    if (depth > MAX_CONFIG_DEPTH) {
      return { path: '', line: this.#line, message: `the config nests more than ${MAX_CONFIG_DEPTH} levels deep here (real configs need about 8): refused before parsing` };
    }
    return undefined;
  }
}

/** `${X}` inside `{ }` or `[ ]` breaks YAML flow syntax; say so when that is the likely cause. */
function flowHint(lineText: string | undefined): string {
  if (lineText === undefined || !unquotedRefInBrackets(lineText)) return '';
  return ' (inside { } or [ ], a ${NAME} value must be quoted: "${NAME}")';
}

/**
 * Whether `line` has a `{` or `[` followed, with no quote in between, by `${`. One pass: the
 * regular expression that says the same (/[{[][^'"]*\$\{/) backtracks from every bracket to
 * the end of the line, and a 16 KiB line of brackets took 100 ms (16 MiB: hours).
 */
function unquotedRefInBrackets(line: string): boolean {
  let bracket = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '$' && bracket && line[i + 1] === '{') return true;
    if (c === '{' || c === '[') bracket = true;
    else if (c === '"' || c === "'") bracket = false;
  }
  return false;
}

/** Maps a document path to the line of the deepest node that exists along it. */
function lineFinder(doc: Document, lineAt: (offset: number) => number): LineOf {
  const lineOfNode = (n: unknown): number | undefined => {
    const range = (n as Node | null | undefined)?.range;
    return range ? lineAt(range[0]) : undefined;
  };
  const deref = (n: unknown): unknown => (isAlias(n) ? n.resolve(doc) : n);

  /** The pair holding `key` in a map, looking through `<<` merges. */
  const findPair = (map: unknown, key: string, depth = 0): { key: unknown; value: unknown } | undefined => {
    if (!isMap(map) || depth > 10) return undefined;
    for (const pair of map.items) {
      if (isScalar(pair.key) && String(pair.key.value) === key) return pair;
    }
    for (const pair of map.items) {
      // With merge enabled the yaml package gives the `<<` key a symbol value.
      if (isScalar(pair.key) && (pair.key.value === '<<' || pair.key.source === '<<')) {
        const sources = isSeq(pair.value) ? pair.value.items : [pair.value];
        for (const src of sources) {
          const found = findPair(deref(src), key, depth + 1);
          if (found) return found;
        }
      }
    }
    return undefined;
  };

  return (path) => {
    let node: unknown = doc.contents;
    let line = lineOfNode(node);
    for (const seg of path) {
      node = deref(node);
      if (isMap(node)) {
        const pair = findPair(node, String(seg));
        if (!pair) break;
        line = lineOfNode(pair.key) ?? line;
        node = pair.value;
      } else if (isSeq(node) && typeof seg === 'number') {
        const item = node.items[seg];
        if (item === undefined) break;
        line = lineOfNode(deref(item)) ?? line;
        node = item;
      } else break;
    }
    return line;
  };
}

// ---------------------------------------------------------------------------------------------
// ${NAME} interpolation.

const ENV_NAME_RE = /^([A-Za-z_][A-Za-z0-9_]*)(?::-([\s\S]*))?$/;

/**
 * Replaces `${NAME}` / `${NAME:-default}` in every string value (not in keys), in place;
 * `$${` stands for a literal `${`. Problems are added to `issues` at the value's path.
 */
function interpolateEnv(value: unknown, env: Env, path: PathSegment[], issues: SchemaIssue[]): unknown {
  if (typeof value === 'string') {
    if (!value.includes('$')) return value;
    const r = interpolateString(value, env);
    for (const message of r.problems) issues.push({ path, message });
    return r.value;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = interpolateEnv(value[i], env, [...path, i], issues);
    return value;
  }
  if (typeof value === 'object' && value !== null) {
    const rec = value as Record<string, unknown>;
    for (const key of Object.keys(rec)) rec[key] = interpolateEnv(rec[key], env, [...path, key], issues);
  }
  return value;
}

/** Interpolates one string, collecting every problem rather than stopping at the first. */
function interpolateString(s: string, env: Env): { value: string; problems: string[] } {
  const problems: string[] = [];
  let out = '';
  let i = 0;
  while (i < s.length) {
    const dollar = s.indexOf('$', i);
    if (dollar < 0) {
      out += s.slice(i);
      break;
    }
    out += s.slice(i, dollar);
    if (s.startsWith('$${', dollar)) {
      out += '${';
      i = dollar + 3;
      continue;
    }
    if (s[dollar + 1] !== '{') {
      out += '$';
      i = dollar + 1;
      continue;
    }
    const end = s.indexOf('}', dollar + 2);
    if (end < 0) {
      problems.push('unterminated "${" (write "$${" for a literal "${")');
      out += s.slice(dollar);
      break;
    }
    const expr = s.slice(dollar + 2, end);
    const m = ENV_NAME_RE.exec(expr);
    if (m === null) {
      problems.push(`"\${${expr}}" is not a variable reference: write \${NAME} or \${NAME:-default}`);
    } else {
      const [, varName, fallback] = m;
      const v = env[varName];
      if (v !== undefined && !(fallback !== undefined && v === '')) out += v;
      else if (fallback !== undefined) out += fallback;
      else problems.push(`environment variable ${varName} is not set (write \${${varName}:-default} to give a default)`);
    }
    i = end + 1;
  }
  return { value: out, problems };
}

// ---------------------------------------------------------------------------------------------
// Validation.

function isWithin(path: readonly PathSegment[], prefix: readonly PathSegment[]): boolean {
  return prefix.length <= path.length && prefix.every((seg, i) => path[i] === seg);
}

function validate(raw: unknown, file: string, lineOf: LineOf, envIssues: SchemaIssue[], options: NormalizeOptions): Config {
  if (raw === null || raw === undefined) {
    throw new ConfigError(ErrorCodes.CONFIG_INVALID, file, [
      { path: '', message: 'the config is empty: it needs at least listeners and pools', ...lineField(lineOf([])) },
    ]);
  }
  const input = applyOverrides(withoutExtensionKeys(raw), options.overrides ?? []);
  const schema = parseWithSchema(input);
  const rules = checkConfigRules(input);
  // A missing variable leaves a value that is wrong for that reason alone: report it once.
  const later = [...schema.issues, ...rules].filter((iss) => !envIssues.some((e) => isWithin(iss.path, e.path)));
  const all = [...envIssues, ...later];
  if (all.length > 0 || schema.config === undefined) {
    throw new ConfigError(ErrorCodes.CONFIG_INVALID, file, toConfigIssues(all, lineOf, options.overrides ?? []));
  }
  const config = schema.config;
  if (options.baseDir !== undefined) resolvePaths(config, options.baseDir);
  return config;
}

/** Sets each override's value at its path, creating the objects along it. */
function applyOverrides(raw: unknown, overrides: readonly ConfigOverride[]): unknown {
  if (overrides.length === 0) return raw;
  const root: Record<string, unknown> = typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? raw as Record<string, unknown> : {};
  for (const o of overrides) {
    let node: Record<string | number, unknown> = root;
    o.path.slice(0, -1).forEach((seg, i) => {
      const next = node[seg];
      if (typeof next !== 'object' || next === null) node[seg] = typeof o.path[i + 1] === 'number' ? [] : {};
      node = node[seg] as Record<string | number, unknown>;
    });
    const last = o.path[o.path.length - 1];
    if (!(o.ifAbsent && node[last] !== undefined)) node[last] = o.value;
  }
  return root;
}

/** Top-level `x-…` keys are the user's (YAML anchors to merge elsewhere, notes): drop them. */
function withoutExtensionKeys(raw: unknown): unknown {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return raw;
  return Object.fromEntries(Object.entries(raw).filter(([key]) => !key.startsWith(EXTENSION_PREFIX)));
}

function lineField(line: number | undefined): { line?: number } {
  return line !== undefined ? { line } : {};
}

/** Locates, de-duplicates and orders issues by line (those without one last). */
function toConfigIssues(issues: SchemaIssue[], lineOf: LineOf, overrides: readonly ConfigOverride[]): ConfigIssue[] {
  const seen = new Set<string>();
  const out: Array<ConfigIssue & { order: number }> = [];
  issues.forEach((iss, order) => {
    const override = overrides.find((o) => isWithin(iss.path, o.path));
    const path = override?.label ?? formatPath(iss.path);
    const key = `${path}\u0000${iss.message}`;
    if (seen.has(key)) return;
    seen.add(key);
    out.push({ path, message: iss.message, ...(override === undefined && lineField(lineOf(iss.path))), order });
  });
  out.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity) || a.order - b.order);
  return out.map(({ order: _order, ...issue }) => issue);
}

/** Makes file paths in the config absolute, relative to the config file's directory. */
function resolvePaths(config: Config, baseDir: string): void {
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(baseDir, p));
  for (const l of config.listeners) {
    for (const c of l.tls?.certificates ?? []) {
      c.cert = abs(c.cert);
      c.key = abs(c.key);
    }
  }
  for (const p of config.pools) {
    if (p.tls?.ca !== undefined) p.tls.ca = abs(p.tls.ca);
  }
  if (config.log.access !== 'stderr' && config.log.access !== 'off') config.log.access = abs(config.log.access);
}
