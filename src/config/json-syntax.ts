/**
 * @module config/json-syntax — where and why a JSON text is not valid JSON.
 *
 * `JSON.parse` says why in words that change between Node versions, and Node 20 gives no position
 * for some mistakes (`Unexpected token ']', ..."p" },\n  ],\n"... is not valid JSON`, over
 * several lines). This scanner walks the text once, after `JSON.parse` has refused it, and
 * returns the offset of the first mistake and a one-line reason.
 */

/** The first syntax error in a JSON text. */
export interface JsonSyntaxError {
  /** Offset in the text (UTF-16 code units) where the mistake is. */
  offset: number;
  message: string;
}

/** Deeper nesting than this is reported rather than walked (no config needs it). */
const MAX_DEPTH = 1000;

class Scanner {
  readonly #text: string;
  #at = 0;

  constructor(text: string) {
    this.#text = text;
  }

  /** Throws a {@link JsonSyntaxError} at the first mistake. */
  document(): void {
    this.#space();
    this.#value(0);
    this.#space();
    if (this.#at < this.#text.length) this.#fail(`unexpected ${this.#describe()} after the end of the document`);
  }

  #fail(message: string, offset = this.#at): never {
    throw { offset, message } satisfies JsonSyntaxError;
  }

  #describe(): string {
    if (this.#at >= this.#text.length) return 'end of file';
    return JSON.stringify(this.#text[this.#at]);
  }

  #space(): void {
    while (this.#at < this.#text.length && ' \t\r\n'.includes(this.#text[this.#at])) this.#at++;
  }

  #value(depth: number): void {
    if (depth > MAX_DEPTH) this.#fail(`nested deeper than ${MAX_DEPTH} levels`);
    const c = this.#text[this.#at];
    if (c === '{') return this.#object(depth);
    if (c === '[') return this.#array(depth);
    if (c === '"') return this.#string();
    if (c === '-' || (c >= '0' && c <= '9')) return this.#number();
    for (const word of ['true', 'false', 'null']) {
      if (this.#text.startsWith(word, this.#at)) {
        this.#at += word.length;
        return;
      }
    }
    if (c === "'") this.#fail('strings need double quotes in JSON');
    if (c !== undefined && /[A-Za-z_]/.test(c)) this.#fail(`unexpected ${this.#describe()}: text values need double quotes in JSON`);
    this.#fail(`expected a value, got ${this.#describe()}`);
  }

  #object(depth: number): void {
    this.#at++;
    this.#space();
    if (this.#text[this.#at] === '}') {
      this.#at++;
      return;
    }
    for (;;) {
      const c = this.#text[this.#at];
      if (c !== '"') {
        if (c === '}') this.#fail('a trailing comma before "}" is not allowed in JSON');
        this.#fail(`expected a property name in double quotes, got ${this.#describe()}`);
      }
      this.#string();
      this.#space();
      if (this.#text[this.#at] !== ':') this.#fail(`expected ":" after the property name, got ${this.#describe()}`);
      this.#at++;
      this.#space();
      this.#value(depth + 1);
      this.#space();
      const next = this.#text[this.#at];
      if (next === '}') {
        this.#at++;
        return;
      }
      if (next !== ',') this.#fail(`expected "," or "}" after a property value, got ${this.#describe()}`);
      this.#at++;
      this.#space();
    }
  }

  #array(depth: number): void {
    this.#at++;
    this.#space();
    if (this.#text[this.#at] === ']') {
      this.#at++;
      return;
    }
    for (;;) {
      if (this.#text[this.#at] === ']') this.#fail('a trailing comma before "]" is not allowed in JSON');
      this.#value(depth + 1);
      this.#space();
      const next = this.#text[this.#at];
      if (next === ']') {
        this.#at++;
        return;
      }
      if (next !== ',') this.#fail(`expected "," or "]" after a list entry, got ${this.#describe()}`);
      this.#at++;
      this.#space();
    }
  }

  #string(): void {
    const start = this.#at;
    this.#at++;
    for (;;) {
      if (this.#at >= this.#text.length) this.#fail('a string is not closed (missing ")', start);
      const c = this.#text[this.#at];
      if (c === '"') {
        this.#at++;
        return;
      }
      if (c === '\n' || c === '\r') this.#fail('a string is not closed before the end of the line (missing ")', start);
      if (c < ' ') this.#fail('a control character inside a string must be escaped');
      if (c === '\\') {
        const e = this.#text[this.#at + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(this.#text.slice(this.#at + 2, this.#at + 6))) this.#fail('"\\u" needs four hex digits');
          this.#at += 6;
          continue;
        }
        if (e === undefined || !'"\\/bfnrt'.includes(e)) this.#fail(`"\\${e ?? ''}" is not a JSON escape (write "\\\\" for a backslash)`);
        this.#at += 2;
        continue;
      }
      this.#at++;
    }
  }

  #number(): void {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(this.#text.slice(this.#at, this.#at + 400));
    if (m === null) this.#fail(`${this.#describe()} does not start a number`);
    this.#at += m[0].length;
  }
}

/** The first syntax error in `text`, or undefined when it is valid JSON. */
export function findJsonSyntaxError(text: string): JsonSyntaxError | undefined {
  try {
    new Scanner(text).document();
    return undefined;
  } catch (err) {
    if (typeof err === 'object' && err !== null && 'offset' in err) return err as JsonSyntaxError;
    throw err;
  }
}
