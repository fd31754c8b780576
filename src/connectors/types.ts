/** The connector contract is a port the core owns (src/core/connector.ts); connectors implement it. */
export * from '../core/connector.ts'
