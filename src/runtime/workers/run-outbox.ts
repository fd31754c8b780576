import type { ChangeEvent } from '../../core/run-change.ts'
import type { RunRow } from '../../db/store.ts'
import type { MetaTable } from './socket-holder.ts'

/**
 * A run object's durable side (its own SQLite storage): the run row as last changed ('run' in
 * meta), the 'dirty' flag, and the outbox of events not yet in libSQL. A change is kept here
 * first, in one transaction; a flush empties the outbox up to what libSQL took.
 */
export class RunOutbox {
  constructor(private readonly storage: DurableObjectStorage, private readonly meta: MetaTable) {}

  /** Create the tables if missing (again after the storage's deleteAll). */
  create(): void {
    this.meta.create()
    this.storage.sql.exec('CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, type TEXT NOT NULL, status TEXT NOT NULL, data TEXT NOT NULL, created_at INTEGER NOT NULL)')
  }

  /** The events not yet in libSQL, in seq order. */
  pending(): ChangeEvent[] {
    return this.storage.sql.exec<{ seq: number; type: ChangeEvent['type']; status: ChangeEvent['status']; data: string; created_at: number }>('SELECT seq, type, status, data, created_at FROM outbox ORDER BY seq').toArray()
      .map((r) => ({ seq: r.seq, type: r.type, status: r.status, data: JSON.parse(r.data), createdAt: r.created_at }))
  }

  /** Whether anything (events, or the run row) still has to reach libSQL. */
  hasPending(): boolean {
    const n = this.storage.sql.exec<{ n: number }>('SELECT count(*) AS n FROM outbox').one().n
    return n > 0 || this.meta.get<boolean>('dirty') === true
  }

  /** Keep the run's new row and its new events, in one transaction. */
  stage(next: RunRow, rows: ChangeEvent[]): void {
    const sql = this.storage.sql
    this.storage.transactionSync(() => {
      this.meta.set('run', next)
      this.meta.set('dirty', true)
      for (const r of rows) sql.exec('INSERT INTO outbox (seq, type, status, data, created_at) VALUES (?, ?, ?, ?, ?)', r.seq, r.type, r.status, JSON.stringify(r.data), r.createdAt)
    })
  }

  /** libSQL has the run row and the events up to `last`: drop them, in one transaction. */
  sent(last: number): void {
    this.storage.transactionSync(() => {
      this.storage.sql.exec('DELETE FROM outbox WHERE seq <= ?', last)
      this.meta.set('dirty', false)
    })
  }

  /**
   * The highest seq published to the sockets: the outbox is emptied in the same turn as its
   * events are published, so it is the seq before the oldest pending event, or the run's last.
   */
  publishedSeq(): number {
    const run = this.meta.get<RunRow>('run')
    if (!run) return 0 // nothing was ever published by this object's storage
    const first = this.storage.sql.exec<{ s: number | null }>('SELECT min(seq) AS s FROM outbox').one().s
    return first !== null ? first - 1 : run.lastSeq
  }
}
