// Bundles app.js and what it imports (@arkflow/plugin-sdk from sdk/, any npm package) into one ES
// module for componentize-js, which resolves relative imports only. The WIT imports
// (arkflow:plugin/...) stay imports: componentize-js binds them. Run by build.sh.
export default {
  input: 'app.js',
  external: [/^arkflow:plugin\//],
  output: { file: 'build/app.js', format: 'esm' },
  // An import found nowhere is an error, not an import the component would lack.
  onLog(level, log, handler) {
    handler(log.code === 'UNRESOLVED_IMPORT' ? 'error' : level, log);
  },
};
