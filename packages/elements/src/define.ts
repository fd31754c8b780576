/** Registers the runrelay custom elements on import (the entry `/embed.js` is built from). */
import { defineRunRelayElements } from './index.ts'

export * from './index.ts'
if (typeof customElements !== 'undefined') defineRunRelayElements()
