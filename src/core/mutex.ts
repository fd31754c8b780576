/** A FIFO async lock: `run` calls never overlap, and run in the order they were made. */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve()

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn, fn)
    this.tail = result.then(() => undefined, () => undefined)
    return result
  }
}

/** One Mutex per key, dropped when idle. */
export class KeyedMutex {
  private readonly locks = new Map<string, { mutex: Mutex; users: number }>()

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    let entry = this.locks.get(key)
    if (!entry) this.locks.set(key, (entry = { mutex: new Mutex(), users: 0 }))
    entry.users++
    try {
      return await entry.mutex.run(fn)
    } finally {
      if (--entry.users === 0) this.locks.delete(key)
    }
  }
}
