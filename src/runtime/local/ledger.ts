import type { NewEvent } from '../../core/domain.ts'
import { Mutex } from '../../core/mutex.ts'
import type { RunLedger } from '../../core/ports.ts'
import type { RunPatch, RunRow, Store } from '../../db/store.ts'
import type { LocalHub } from './hub.ts'

/**
 * Persist, then publish, under one process-wide lock: the feed's order (event ids) is then
 * the order subscribers receive, so resuming a feed after an id never skips an event that
 * was still in flight. The embedded engine serialises writes anyway, so the lock costs
 * little.
 */
export class LocalLedger implements RunLedger {
  private readonly lock = new Mutex()

  constructor(private readonly store: Store, private readonly hub: LocalHub, private readonly now: () => number) {}

  getRun(runId: string): Promise<RunRow | undefined> {
    return this.store.getRunById(runId)
  }

  commit(run: RunRow, patch: RunPatch, events: NewEvent[]) {
    return this.lock.run(async () => {
      const result = await this.store.applyRunChange(run, patch, events, this.now())
      this.hub.publish(run.tenantId, result.events)
      return result
    })
  }

  create(...args: Parameters<Store['createRun']>) {
    return this.lock.run(async () => {
      const result = await this.store.createRun(...args)
      this.hub.publish(result.run.tenantId, [result.event])
      return result
    })
  }
}
