// `node --import ./tests/register.mjs --test tests/`: installs hooks.mjs before the tests load.
import { register } from 'node:module';

register('./hooks.mjs', import.meta.url);
