// A node:test reporter that writes the names of skipped tests, one per line, to its
// destination; scripts/run-tests.mjs reads them so that CI fails on any skip (the charter: in CI
// nothing may be skipped; a test that cannot run there must fail, not pass silently).
export default async function* skipReporter(source) {
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { skip, name, file } = event.data;
    if (skip !== undefined && skip !== false) yield `${file ?? '?'}: ${name}${typeof skip === 'string' ? ` (${skip})` : ''}\n`;
  }
}
