import type { CommandName, Observation } from '../../connectors/types.ts'
import type { NewEvent } from '../../core/domain.ts'
import { CommandRejected } from '../../core/watcher.ts'
import type { RunRow, Store } from '../../db/store.ts'
import type { RunHosts } from '../../http/hosts.ts'
import type { Env } from './env.ts'
import type { CommandOutcome } from './run-object.ts'

/** Run hosts on Workers: every run lives in its own RunObject, named by the run id. */
export class WorkersRunHosts implements RunHosts {
  constructor(private readonly env: Env, private readonly publicUrl: () => string) {}

  private stub(runId: string) {
    return this.env.RUNS.get(this.env.RUNS.idFromName(runId))
  }

  /** The run object writes the run and run.created to libSQL, publishes it and arms its alarm. */
  create(row: Parameters<Store['runs']['create']>[0], created: NewEvent): Promise<RunRow> {
    return this.stub(row.id).create(row, created, this.publicUrl()) as Promise<RunRow>
  }

  async command(run: RunRow, name: CommandName, payload: unknown, by: string): Promise<RunRow> {
    const outcome = (await this.stub(run.id).command(run.id, name, payload, by)) as CommandOutcome
    if (!outcome.ok) throw new CommandRejected(outcome.code, outcome.message)
    return outcome.run
  }

  async push(run: RunRow, obs: Observation): Promise<void> {
    await this.stub(run.id).push(run.id, obs)
  }
}
