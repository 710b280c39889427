// `node --import ./recordImports.mjs …`: appends every module URL the process resolves to the file
// named by DOCSIFT_TEST_IMPORTS_FILE (a test's check of what a command loads).
import { register } from 'node:module';

const hooks = `
import fs from 'node:fs';
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  fs.appendFileSync(process.env.DOCSIFT_TEST_IMPORTS_FILE, resolved.url + '\\n');
  return resolved;
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);
