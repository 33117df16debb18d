// Module-resolution hooks for the native unit tests: the WIT imports `arkflow:plugin/<iface>@0.2.0`
// resolve to fake-wit.mjs, whose exports delegate to the test's fakes.
import { pathToFileURL } from 'node:url';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const fake = pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), 'fake-wit.mjs')).href;

export async function resolve(specifier, context, next) {
  if (specifier.startsWith('arkflow:plugin/')) return { url: fake, shortCircuit: true };
  return next(specifier, context);
}
