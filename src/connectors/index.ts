import type { Connector } from './types.ts'
import { demoConnector } from './demo/index.ts'
import { httpConnector } from './http/index.ts'

/** Every connector runrelay ships, by provider name. */
export const CONNECTORS: Record<string, Connector> = {
  demo: demoConnector,
  http: httpConnector,
}

export const PROVIDERS = Object.keys(CONNECTORS)

export function getConnector(provider: string): Connector | undefined {
  return Object.hasOwn(CONNECTORS, provider) ? CONNECTORS[provider] : undefined
}
