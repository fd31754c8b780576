import type { Connector } from './types.ts'
import { demoConnector } from './demo/index.ts'
import { httpConnector } from './http/index.ts'
import { indigeniusConnector } from './indigenius/index.ts'
import { interactlyConnector } from './interactly/index.ts'
import { pipelinegenerationConnector } from './pipelinegeneration/index.ts'
import { wivConnector } from './wiv/index.ts'
import { wokeloConnector } from './wokelo/index.ts'

/** Every connector runrelay ships, by provider name. */
export const CONNECTORS: Record<string, Connector> = {
  demo: demoConnector,
  http: httpConnector,
  wokelo: wokeloConnector,
  pipelinegeneration: pipelinegenerationConnector,
  wiv: wivConnector,
  indigenius: indigeniusConnector,
  interactly: interactlyConnector,
}

export const PROVIDERS = Object.keys(CONNECTORS)

export function getConnector(provider: string): Connector | undefined {
  return Object.hasOwn(CONNECTORS, provider) ? CONNECTORS[provider] : undefined
}
