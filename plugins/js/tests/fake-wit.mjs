// Stands in for every `arkflow:plugin/*` import in the unit tests (native, and of components
// transpiled by jco). A test sets `globalThis.arkflowFake = { open(name), log(level, message) }`,
// plus `declare(fields)` / `columns()` when it uses typed fields (an `err` is thrown as an Error
// whose `payload` is the message, as the bindings do). `open` returns an object with the store's
// methods, which the `Store` resource delegates to (jco accepts only instances of the imported
// class as resource handles).
export class Store {
  #impl;

  constructor(impl) {
    this.#impl = impl;
  }

  static open(name) {
    return new Store(globalThis.arkflowFake.open(name));
  }

  get(key) { return this.#impl.get(key); }
  put(key, value) { return this.#impl.put(key, value); }
  delete(key) { return this.#impl.delete(key); }
  getMany(keys) { return this.#impl.getMany(keys); }
  putMany(entries) { return this.#impl.putMany(entries); }
  deleteMany(keys) { return this.#impl.deleteMany(keys); }
  getColumn(keys) { return this.#impl.getColumn(keys); }
  putColumn(keys, values) { return this.#impl.putColumn(keys, values); }
  increment(key, delta) { return this.#impl.increment(key, delta); }
  scanPrefix(prefix, startAfter, limit) { return this.#impl.scanPrefix(prefix, startAfter, limit); }
}

export function log(level, message) {
  globalThis.arkflowFake.log(level, message);
}

export function counterAdd() {}
export function gaugeSet() {}
export function histogramRecord() {}

export function declare(fields) {
  return globalThis.arkflowFake.declare(fields);
}

export function columns() {
  return globalThis.arkflowFake.columns();
}
